#!/usr/bin/env bash
# The project's one test command (README, CI): lint and types, then every test on Airflow 3.3 (unit,
# stand-in, fault matrix, real-Airflow e2e), then the unit tests that apply on Airflow 3.2 and 2.11.
#   bash dev/test.sh           everything
#   bash dev/test.sh --quick   Airflow 3.3 only, without the e2e tests
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
quick=false
[[ "${1:-}" == "--quick" ]] && quick=true

start=$(date +%s)
ensure_uv
versions=(3.3 3.2 2.11)
$quick && versions=(3.3)
for version in "${versions[@]}"; do make_env "$version"; done

log "ruff and mypy"
in_env 3.3 ruff check .
in_env 3.3 ruff format --check .
in_env 3.3 mypy --config-file pyproject.toml

log "Airflow 3.3: all tests"
selection=()
$quick && selection=(-m "not e2e")
in_env 3.3 python -m pytest "${selection[@]}"

if ! $quick; then
  for version in 3.2 2.11; do
    log "Airflow $version: unit tests that apply before 3.3 (imports, stub mixin, hooks, sensor, trigger)"
    in_env "$version" python -m pytest providers/apache/livy/tests/unit -m "not airflow33"
  done
fi
log "all tests passed in $(( $(date +%s) - start )) s"
