#!/usr/bin/env bash
# The project's one test command (README, CI): lint and types, the docs build, the released provider's
# own unit tests (4.6.4's sdist, downloaded with pip), then every test on Airflow 3.3 (unit,
# stand-in, fault matrix, real-Airflow e2e on LocalExecutor and on a distributed CeleryExecutor with
# PostgreSQL and Redis; then one e2e scenario with a real Spark application: PySpark from PyPI, the
# machine's Java; then real Apache Livy, its jars from Maven Central: the conformance suite against
# the stand-in and Livy, and e2e scenarios on Livy), then on Airflow 3.4 (a pre-release) the unit tests, the fault matrix and the
# LocalExecutor e2e tests, then the unit tests that apply on Airflow 3.2 and 2.11. Installs what it
# needs: uv and the virtualenvs from PyPI, PostgreSQL and Redis (and Java and Maven where missing)
# from Debian's packages (as root), Apache Livy's jars from Maven Central.
#   bash dev/test.sh           everything
#   bash dev/test.sh --quick   Airflow 3.3 only, without the e2e tests
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
quick=false
[[ "${1:-}" == "--quick" ]] && quick=true

start=$(date +%s)
# step NAME: log NAME and time it until the next step (or the end); the end lists every step's time.
steps=()
step_name="environments"
step_start=$start
step() {
  local now
  now=$(date +%s)
  steps+=("$(printf '%4d s  %s' $((now - step_start)) "$step_name")")
  step_name="$1"
  step_start=$now
  log "$1"
}
# On a failure: the steps that passed, with their times, and the one that failed.
report_failure() {
  local code=$?
  ((code)) || return 0
  steps+=("$(printf '%4d s  %s' $(($(date +%s) - step_start)) "FAILED: $step_name")")
  printf '\n' >&2
  printf '%s\n' "${steps[@]}" >&2
  printf '\033[1;31mthe test command failed in step "%s" (exit %d) after %d s\033[0m\n' \
    "$step_name" "$code" $(($(date +%s) - start)) >&2
}
trap report_failure EXIT

ensure_uv
$quick || ensure_services
versions=(3.3 3.4 3.2 2.11)
$quick && versions=(3.3)
for version in "${versions[@]}"; do make_env "$version"; done
make_docs_env

step "ruff and mypy"
in_env 3.3 ruff check .
in_env 3.3 ruff format --check .
in_env 3.3 mypy --config-file pyproject.toml

step "docs: Sphinx build of providers/apache/livy/docs, warnings as errors (into build/docs)"
build_docs "$ROOT/build/docs"

# The released provider's own unit tests, unmodified, against this provider: a patch must pass them
# but for the deliberate changes listed (with their reasons) in dev/released-suite/deliberate-changes.txt.
step "Airflow 3.3: the released provider's (4.6.4) own unit tests, unmodified"
released_suite -q

step "Airflow 3.3: all tests"
selection=(-m "not spark and not livy")  # real Spark and real Livy have steps of their own, next
$quick && selection=(-m "not e2e and not spark and not livy")
in_env 3.3 python -m pytest "${selection[@]}"

if ! $quick; then
  # PySpark (~460 MB) into .venvs/spark, once; then the stand-in's real-Spark backend test and the e2e
  # scenario that SIGKILLs the worker while a real Spark application runs (a deployment of its own).
  step "Airflow 3.3: real Spark (PySpark env, stand-in --spark backend, e2e worker kill mid-app)"
  make_spark_env
  in_env 3.3 python -m pytest -m "spark and not livy"

  # Real Apache Livy (its jars from Maven Central, once), driving real spark-submit jobs: the
  # conformance suite (the same requests to the stand-in and to Livy) and the e2e scenarios on it.
  step "Airflow 3.3: real Apache Livy (conformance suite: stand-in and Livy; e2e on Livy)"
  make_livy_env
  APACHE_LIVY_REQUIRED=1 in_env 3.3 python -m pytest -m livy

  step "Airflow 3.4: unit tests (all, including airflow33) and the fault matrix"
  in_env 3.4 python -m pytest providers/apache/livy/tests/unit providers/apache/livy/tests/faults

  # Its own deployment (a scratch AIRFLOW_HOME), as the 3.3 step's e2e tests had. The distributed
  # scenarios run on 3.3 (the Celery provider is installed there).
  step "Airflow 3.4: e2e (LocalExecutor)"
  in_env 3.4 python -m pytest providers/apache/livy/tests/e2e -m "not celery and not spark and not livy" \
    --ignore=providers/apache/livy/tests/e2e/test_airflow34.py

  # Task loops and the discarding clear, in a deployment of their own: together with the scenarios
  # above, one api-server on 2 cores stalled, and 3.4.0b2's heartbeat-timeout purge crashes the scheduler.
  step "Airflow 3.4: e2e of task loops and the discarding clear (LocalExecutor)"
  in_env 3.4 python -m pytest providers/apache/livy/tests/e2e/test_airflow34.py

  for version in 3.2 2.11; do
    step "Airflow $version: unit tests that apply before 3.3 (imports, stub mixin, hooks, sensor, trigger)"
    in_env "$version" python -m pytest providers/apache/livy/tests/unit -m "not airflow33"
  done
fi
step "all tests passed in $(( $(date +%s) - start )) s"
printf '%s\n' "${steps[@]}" >&2
trap - EXIT
