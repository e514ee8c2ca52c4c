"""
Estimate Pi with Spark: ``spark-submit pi.py [PARTITIONS] [SECONDS_PER_PARTITION] [SAMPLES_PER_PARTITION]``.

A real PySpark application for the Livy stand-in's real-Spark backend (``dev/demo.sh --spark``, the
real-Spark e2e test). Each partition samples random points in the unit square and then sleeps
``SECONDS_PER_PARTITION``, so the application's length is under control (``local[1]`` runs the
partitions one after another). Prints ``Pi is roughly <estimate>`` and the application id.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator

from pyspark.sql import SparkSession


def inside(samples: int, seconds: float) -> Iterator[int]:
    """How many of ``samples`` random points fall in the quarter circle; sleeps ``seconds`` first."""
    time.sleep(seconds)
    yield sum(1 for _ in range(samples) if random.random() ** 2 + random.random() ** 2 <= 1.0)


def main(argv: list[str]) -> int:
    partitions = int(argv[0]) if argv else 2
    seconds = float(argv[1]) if len(argv) > 1 else 0.0
    samples = int(argv[2]) if len(argv) > 2 else 100_000
    spark = SparkSession.builder.appName("PythonPi").getOrCreate()
    context = spark.sparkContext
    print(f"Spark application {context.applicationId}: {partitions} partitions, {seconds} s each", flush=True)
    hits = (
        context.parallelize(range(partitions), partitions)
        .mapPartitions(lambda _: inside(samples, seconds))
        .sum()
    )
    print(f"Pi is roughly {4.0 * hits / (partitions * samples):.5f}", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
