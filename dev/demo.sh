#!/usr/bin/env bash
# The one-command demo of the crash-safe LivyOperator (see dev/demo.py):
#   bash dev/demo.sh            LocalExecutor on SQLite
#   bash dev/demo.sh --celery   CeleryExecutor, two workers, Redis, PostgreSQL (installed from Debian's
#                               packages where missing)
#   bash dev/demo.sh --spark    real Spark applications behind the stand-in (PySpark from PyPI into
#                               .venvs/spark, spark-submit --master local[1], the machine's Java)
#   bash dev/demo.sh --livy     real Apache Livy (its jars from Maven Central into
#                               dev/apache-livy/target/jars) running real Spark applications
# Builds (or re-syncs) the Airflow 3.3 environment, then runs a real Airflow on 127.0.0.1, SIGKILLs
# a worker mid-job with durable=True and with durable=False, and compares what Livy saw.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_uv
[[ " $* " == *" --celery "* ]] && ensure_services
make_env 3.3
[[ " $* " == *" --spark "* || " $* " == *" --livy "* ]] && make_spark_env
[[ " $* " == *" --livy "* ]] && make_livy_env
in_env 3.3 python dev/demo.py "$@"
