# Shared by dev/test.sh and dev/demo.sh: bootstrap uv and build one virtualenv per Airflow version.
# Only python3 and pip are assumed; everything else is installed from PyPI by version-pinned files.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="$ROOT/.venvs"
export UV_LINK_MODE=copy

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_uv() {
  if command -v uv >/dev/null 2>&1; then UV=(uv); return; fi
  if ! python3 -m uv --version >/dev/null 2>&1; then
    log "installing uv with pip"
    python3 -m pip install --quiet --disable-pip-version-check uv \
      || python3 -m pip install --quiet --disable-pip-version-check --user uv
  fi
  UV=(python3 -m uv)
}

# make_env VERSION: .venvs/airflow-VERSION with the pinned requirements, the provider and the
# stand-in (editable); re-syncs in a second or two when it already exists.
make_env() {
  local version="$1" env="$VENVS/airflow-$1"
  log "environment for Airflow $version: $env"
  [[ -x "$env/bin/python" ]] || "${UV[@]}" venv --quiet --python "$(command -v python3)" "$env"
  "${UV[@]}" pip sync --quiet --python "$env/bin/python" "$ROOT/dev/requirements/airflow-$version.txt"
  "${UV[@]}" pip install --quiet --python "$env/bin/python" --no-deps \
    -e "$ROOT/providers/apache/livy" -e "$ROOT/dev/livy-standin"
  mkdir -p "$VENVS/home-$version"
}

# in_env VERSION CMD...: run CMD with that environment's tools first on PATH and its own AIRFLOW_HOME.
in_env() {
  local version="$1"; shift
  env PATH="$VENVS/airflow-$version/bin:$PATH" VIRTUAL_ENV="$VENVS/airflow-$version" \
    AIRFLOW_HOME="$VENVS/home-$version" AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__CORE__UNIT_TEST_MODE=False "$@"
}
