# Shared by dev/test.sh and dev/demo.sh: bootstrap uv and build one virtualenv per Airflow version.
# Only python3 and pip are assumed; everything else is installed from PyPI by version-pinned files,
# but for the distributed deployment's PostgreSQL and Redis servers, from Debian's packages.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="$ROOT/.venvs"
export UV_LINK_MODE=copy

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[1;31merror: %s\033[0m\n' "$*" >&2; exit 1; }

# ensure_services: PostgreSQL's server and Redis (the distributed e2e deployment and `demo.sh --celery`),
# installed from Debian's packages where missing: as root (CI), or with sudo when it asks no password.
# The tests start their own servers on 127.0.0.1 (none of the packages' system services is used).
ensure_services() {
  local missing=() sudo=()
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || die "needs ${missing[*]} (PostgreSQL's server, Redis); install them, then run again"
  if [[ $(id -u) -ne 0 ]]; then
    sudo -n true 2>/dev/null || die "needs ${missing[*]}: run 'sudo apt-get install ${missing[*]}', then run again"
    sudo=(sudo -n)
  fi
  log "installing ${missing[*]} from Debian's packages"
  local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends)
  "${install[@]}" "${missing[@]}" >/dev/null \
    || { "${sudo[@]}" apt-get update -qq && "${install[@]}" "${missing[@]}" >/dev/null; } \
    || die "could not install ${missing[*]} with apt-get"
}

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
