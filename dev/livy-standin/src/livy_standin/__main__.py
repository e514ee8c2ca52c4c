"""Command line: ``python -m livy_standin --host 127.0.0.1 --port 8998``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from .server import DEFAULT_LIVY_VERSION, LivyStandin, check_loopback
from .spark import SparkLauncher, java_home_from_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; refuse a non-loopback host."""
    parser = argparse.ArgumentParser(prog="livy_standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="IPv4 loopback address to bind")
    parser.add_argument("--port", type=int, default=8998, help="0 picks a free port")
    parser.add_argument("--retain-seconds", type=float, default=600.0, help="keep finished batches this long")
    parser.add_argument("--gc-interval", type=float, default=60.0, help="seconds between GC runs")
    parser.add_argument("--csrf", action="store_true", help="require X-Requested-By on non-GET requests")
    parser.add_argument("--livy-version", default=DEFAULT_LIVY_VERSION, help="reported by GET /version")
    parser.add_argument("--port-file", help="write the bound port number to this file")
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    parser.add_argument(
        "--spark", action="store_true", help="run each batch as a real spark-submit (local[1]), not simulated"
    )
    parser.add_argument(
        "--spark-home",
        default=os.environ.get("LIVY_STANDIN_SPARK_HOME") or os.environ.get("SPARK_HOME"),
        help="with --spark: Spark's home, e.g. pyspark's package dir ($LIVY_STANDIN_SPARK_HOME, $SPARK_HOME)",
    )
    parser.add_argument(
        "--spark-python",
        default=os.environ.get("LIVY_STANDIN_SPARK_PYTHON", "python3"),
        help="with --spark: the Python (with pyspark) of the apps ($LIVY_STANDIN_SPARK_PYTHON)",
    )
    parser.add_argument(
        "--java-home",
        default=java_home_from_path(),
        help="with --spark: the JVM ($JAVA_HOME, else PATH's java)",
    )
    args = parser.parse_args(argv)
    if args.spark and not args.spark_home:
        parser.error("--spark needs --spark-home (or LIVY_STANDIN_SPARK_HOME / SPARK_HOME)")
    try:
        check_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def write_port_file(path: str, port: int) -> None:
    """Write the port atomically, so a reader never sees a partial file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    args = parse_args(argv)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    spark = SparkLauncher(args.spark_home, args.spark_python, args.java_home) if args.spark else None
    server = LivyStandin(
        host=args.host,
        port=args.port,
        retain_seconds=args.retain_seconds,
        gc_interval=args.gc_interval,
        csrf=args.csrf,
        livy_version=args.livy_version,
        quiet=args.quiet,
        spark=spark,
    ).start()
    try:
        backend = f" (real Spark: {spark.submit})" if spark is not None else ""
        print(f"livy-standin listening on {server.url}{backend}", flush=True)
        if args.port_file:
            write_port_file(args.port_file, server.port)
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
        if spark is not None:
            spark.close()  # ends every spark-submit still running (SIGTERM, then SIGKILL)
    print("livy-standin stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
