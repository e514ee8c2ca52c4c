# Shared by dev/test.sh and dev/demo.sh: bootstrap uv and build one virtualenv per Airflow version.
# Only python3 and pip are assumed; everything else is installed from PyPI by version-pinned files,
# but for the distributed deployment's PostgreSQL and Redis servers, and Java and Maven (real Spark,
# real Apache Livy), from Debian's packages where missing.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="$ROOT/.venvs"
export UV_LINK_MODE=copy

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[1;31merror: %s\033[0m\n' "$*" >&2; exit 1; }

# ensure_services: PostgreSQL's server and Redis (the distributed e2e deployment and `demo.sh --celery`),
# installed from Debian's packages where missing: as root (CI), or with sudo when it asks no password.
# The tests start their own servers on 127.0.0.1 (none of the packages' system services is used).
ensure_services() {
  local missing=()
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  apt_install "${missing[@]}"
}

# ensure_java_maven: Java 17 and Maven (real Spark and real Apache Livy), from Debian's packages where
# missing.
ensure_java_maven() {
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jdk-headless)
  command -v mvn >/dev/null || missing+=(maven)
  apt_install "${missing[@]}"
}

# apt_install PACKAGE...: install the packages from Debian's packages (as root, or with password-less
# sudo); nothing to do without arguments.
apt_install() {
  local missing=("$@") sudo=()
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || die "needs ${missing[*]}; install them, then run again"
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

# ensure_uv: UV=(the uv to use): uv on PATH, else one pip installed into .venvs/.uv. `pip install
# --target` writes only there, so it works on an "externally managed" (PEP 668) system Python such as
# Debian's, where a plain or --user pip install is refused; uv then builds the virtualenvs itself, so
# python3-venv/ensurepip are not needed either.
UV_VERSION=0.13.9
ensure_uv() {
  if command -v uv >/dev/null 2>&1; then UV=(uv); return; fi
  local target="$VENVS/.uv"
  if ! "$target/bin/uv" --version >/dev/null 2>&1; then
    log "installing uv $UV_VERSION with pip into $target"
    rm -rf "$target"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
      --target "$target" "uv==$UV_VERSION" || die "could not install uv with 'python3 -m pip install --target'"
  fi
  UV=("$target/bin/uv")
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

# make_spark_env: .venvs/spark with pinned PySpark (spark-submit and Spark's jars) for the stand-in's
# real-Spark backend (`demo.sh --spark`, the real-Spark e2e step); kept apart so the Airflow envs stay
# small. The first build downloads ~460 MB (~45 s); a re-sync takes a second. Installs Java 17 where missing (ensure_java_maven).
# Exports LIVY_STANDIN_SPARK_HOME (the pyspark package dir) and LIVY_STANDIN_SPARK_PYTHON.
make_spark_env() {
  local env="$VENVS/spark"
  ensure_java_maven
  log "environment for real Spark (PySpark): $env"
  [[ -x "$env/bin/python" ]] || "${UV[@]}" venv --quiet --python "$(command -v python3)" "$env"
  "${UV[@]}" pip sync --quiet --python "$env/bin/python" "$ROOT/dev/requirements/spark.txt"
  LIVY_STANDIN_SPARK_HOME="$("$env/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
  LIVY_STANDIN_SPARK_PYTHON="$env/bin/python"
  export LIVY_STANDIN_SPARK_HOME LIVY_STANDIN_SPARK_PYTHON
}

# make_livy_env: real Apache Livy's server jars (dev/apache-livy: livy-server and its runtime
# dependencies from Maven Central, ~75 MB, into dev/apache-livy/target/jars; the Maven repository is
# .venvs/.m2, so a second run downloads nothing). Installs Java 17 and Maven where missing
# (ensure_java_maven). Exports APACHE_LIVY_JARS.
make_livy_env() {
  ensure_java_maven
  log "real Apache Livy: server jars from Maven Central (dev/apache-livy)"
  mvn -q -B -f "$ROOT/dev/apache-livy/pom.xml" -Dmaven.repo.local="$VENVS/.m2" package
  APACHE_LIVY_JARS="$ROOT/dev/apache-livy/target/jars"
  export APACHE_LIVY_JARS
}

# make_docs_env: .venvs/docs with Sphinx and sphinx-autoapi (dev/requirements/docs.txt). The docs build
# reads the provider's docstrings from its source without importing it, so it needs no Airflow.
make_docs_env() {
  local env="$VENVS/docs"
  log "environment for the docs: $env"
  [[ -x "$env/bin/python" ]] || "${UV[@]}" venv --quiet --python "$(command -v python3)" "$env"
  "${UV[@]}" pip sync --quiet --python "$env/bin/python" "$ROOT/dev/requirements/docs.txt"
}

# build_docs OUT: the provider's docs (providers/apache/livy/docs) as HTML into OUT; any Sphinx warning
# (an unresolved reference included: -n) fails it.
build_docs() {
  rm -rf "$1"
  "$VENVS/docs/bin/sphinx-build" -W --keep-going -n -q -b html "$ROOT/providers/apache/livy/docs" "$1"
}

# released_suite [PYTEST ARGS...]: the released provider's own unit tests, unmodified, against this
# provider on Airflow 3.3. The released sdist is downloaded with pip at test time into .venvs (never
# committed) and checked against its pinned SHA-256; only its tests/ are unpacked. dev/released-suite
# holds the small tests_common stand-in those tests import and the list of deliberate changes.
RELEASED_VERSION=4.6.4
RELEASED_SDIST_SHA256=efd4b3425dddb1e9312a550a377f617d19f2551b9f338523069c02a5347fdabd
released_suite() {
  local dir="$VENVS/released-$RELEASED_VERSION" sdist
  if [[ ! -f "$dir/tests/conftest.py" ]]; then
    log "downloading the released provider $RELEASED_VERSION (sdist) for its tests"
    rm -rf "$dir" && mkdir -p "$dir/download"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip download --quiet --disable-pip-version-check --no-deps \
      --no-binary :all: -d "$dir/download" "apache-airflow-providers-apache-livy==$RELEASED_VERSION" \
      || die "could not download apache-airflow-providers-apache-livy==$RELEASED_VERSION with pip"
    sdist="$dir/download/apache_airflow_providers_apache_livy-$RELEASED_VERSION.tar.gz"
    echo "$RELEASED_SDIST_SHA256  $sdist" | sha256sum --check --quiet - || die "$sdist: unexpected SHA-256"
    tar -xzf "$sdist" -C "$dir" --strip-components=1 "apache_airflow_providers_apache_livy-$RELEASED_VERSION/tests"
  fi
  in_env 3.3 env PYTHONPATH="$ROOT/dev/released-suite" python -m pytest -c "$ROOT/dev/released-suite/pytest.ini" \
    --rootdir "$dir" -p no:cacheprovider "$dir/tests/unit" "$@"
}

# in_env VERSION CMD...: run CMD with that environment's tools first on PATH and its own AIRFLOW_HOME.
in_env() {
  local version="$1"; shift
  env PATH="$VENVS/airflow-$version/bin:$PATH" VIRTUAL_ENV="$VENVS/airflow-$version" \
    AIRFLOW_HOME="$VENVS/home-$version" AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__CORE__UNIT_TEST_MODE=False "$@"
}
