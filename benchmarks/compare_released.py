"""
Our provider against the released apache-airflow-providers-apache-livy 4.6.4, side by side in one run.

Installs 4.6.4 into benchmarks/.venv-4.6.4 (the pinned packages of dev/requirements/airflow-3.3.txt,
the released provider and the stand-in; reused when the pins have not changed), then runs
compare_released_probe.py in both venvs and prints, for each provider: the CPU time a DAG file pays to
import the operator, HTTP requests and response bytes per poll, requests and task state store writes
per task (polling mode, default ``durable``, against the Livy stand-in on 127.0.0.1).

    .venvs/airflow-3.3/bin/python benchmarks/compare_released.py [TASKS] [IMPORTS]
    (after bash dev/test.sh --quick; TASKS per provider, default 5; IMPORTS fresh processes, default 7)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compare_released_probe import JOB, POLLING_INTERVAL

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
PROBE = BENCH / "compare_released_probe.py"
OURS_PYTHON = ROOT / ".venvs" / "airflow-3.3" / "bin" / "python"
RELEASED = "4.6.4"
RELEASED_VENV = BENCH / f".venv-{RELEASED}"
REQUIREMENTS = ROOT / "dev" / "requirements" / "airflow-3.3.txt"
PYCACHE = BENCH / ".pycache"
GOALS = {"import": 0.10, "bytes": 2.0, "requests": 1.0}


def uv_command() -> list[str]:
    """``python3 -m uv``, else ``uv`` on PATH."""
    for command in (["python3", "-m", "uv"], ["uv"]):
        if (
            shutil.which(command[0])
            and subprocess.run([*command, "--version"], capture_output=True).returncode == 0
        ):
            return command
    sys.exit("uv is needed: python3 -m pip install uv")


def setup_fingerprint() -> str:
    """What the released venv was built from; a change rebuilds it."""
    return hashlib.sha256(REQUIREMENTS.read_bytes() + RELEASED.encode()).hexdigest()


def ensure_released_venv() -> Path:
    """Create or refresh benchmarks/.venv-4.6.4; a no-op when it was built from the same pins."""
    python, marker = RELEASED_VENV / "bin" / "python", RELEASED_VENV / ".bench-fingerprint"
    if python.exists() and marker.exists() and marker.read_text() == setup_fingerprint():
        return python
    print(
        f"setting up {RELEASED_VENV.relative_to(ROOT)} (once; seconds with a warm uv cache, minutes without)",
        file=sys.stderr,
    )
    uv, env = uv_command(), {**os.environ, "UV_LINK_MODE": "copy"}
    if not python.exists():
        base = os.path.realpath(OURS_PYTHON)
        subprocess.run([*uv, "venv", "--quiet", "--python", base, str(RELEASED_VENV)], check=True, env=env)
    target = ["--quiet", "--python", str(python)]
    subprocess.run([*uv, "pip", "sync", *target, str(REQUIREMENTS)], check=True, env=env)
    standin = str(ROOT / "dev" / "livy-standin")
    released = f"apache-airflow-providers-apache-livy=={RELEASED}"
    subprocess.run(
        [*uv, "pip", "install", *target, "--no-deps", released, "-e", standin], check=True, env=env
    )
    marker.write_text(setup_fingerprint())
    return python


def child_env(airflow_home: str) -> dict[str, str]:
    """The children's environment: bytecode on (cached under benchmarks/.pycache), a scratch AIRFLOW_HOME."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW_", "AIRFLOW__"))}
    for key in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(key, None)
    env.update(
        PYTHONPYCACHEPREFIX=str(PYCACHE),
        AIRFLOW_HOME=airflow_home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        NO_PROXY="127.0.0.1",
        no_proxy="127.0.0.1",
    )
    return env


def probe(python: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run the probe in one venv and return its ``RESULT`` JSON."""
    done = subprocess.run([str(python), str(PROBE), *args], capture_output=True, text=True, env=env)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))
    raise RuntimeError(f"{python} {PROBE.name} {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def measure_imports(pythons: dict[str, Path], env: dict[str, str], runs: int) -> dict[str, dict[str, Any]]:
    """One warm-up import each (writes the .pyc files), then ``runs`` fresh processes each, interleaved."""
    samples: dict[str, list[dict[str, Any]]] = {label: [] for label in pythons}
    for python in pythons.values():
        probe(python, env, "import")
    for _ in range(runs):
        for label, python in pythons.items():
            samples[label].append(probe(python, env, "import"))
    return {
        label: {**runs_[-1], "cpu_seconds": statistics.median(run["cpu_seconds"] for run in runs_)}
        for label, runs_ in samples.items()
    }


def median_of(tasks: list[dict[str, Any]], figure: Callable[[dict[str, Any]], float | None]) -> float | None:
    values = [value for value in map(figure, tasks) if value is not None]
    return statistics.median(values) if values else None


def per_iteration(task: dict[str, Any]) -> float | None:
    return task["loop_reads"] / task["loop_iterations"] if task["loop_iterations"] else None


def task_figures(result: dict[str, Any]) -> dict[str, Any]:
    """Medians and means over the measured tasks of one provider."""
    tasks = result["tasks"]
    kinds = sorted({kind for task in tasks for kind in task["requests"]})
    return {
        "polls": median_of(tasks, lambda task: task["polls"]),
        "reads_per_poll": median_of(tasks, per_iteration),
        "bytes_per_read": sum(task["loop_bytes"] for task in tasks)
        / max(1, sum(t["loop_reads"] for t in tasks)),
        "polls_seen": all(task["loop_iterations"] for task in tasks),
        "requests": statistics.mean(sum(task["requests"].values()) for task in tasks),
        "outside_loop": statistics.mean(
            sum(task["requests"].values()) - task["loop_reads"] for task in tasks
        ),
        "by_kind": {kind: statistics.mean(task["requests"].get(kind, 0) for task in tasks) for kind in kinds},
        "writes": statistics.mean(task["writes"] for task in tasks),
        "deletes": statistics.mean(task["deletes"] for task in tasks),
        "seconds": statistics.median(task["seconds"] for task in tasks),
        "client_requests": sum(sum(task["requests"].values()) for task in tasks),
        "server_requests": result["server_requests"],
        "batch_states": result["batch_states"],
    }


def ratio(ours: float | None, released: float | None) -> float | None:
    return ours / released if ours is not None and released else None


def number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def module_mark(imported: dict[str, Any], name: str) -> str:
    """yes / no, or 'already' when ``import airflow.sdk`` had loaded it before the operator import."""
    if imported["preloaded"][name]:
        return "already"
    return "yes" if imported["loaded"][name] else "no"


def table_rows(imports: dict[str, Any], tasks: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """figure | 4.6.4 | ours | ratio, as text."""
    rows: list[tuple[str, str, str, str]] = []

    def add(label: str, released: float | None, ours: float | None, digits: int) -> None:
        rate = ratio(ours, released)
        rows.append(
            (
                label,
                number(released, digits),
                number(ours, digits),
                number(rate, 2) + "x" if rate is not None else "-",
            )
        )

    old, new = imports["released"], imports["ours"]
    add("import CPU, ms (median)", old["cpu_seconds"] * 1000, new["cpu_seconds"] * 1000, 1)
    add("  modules the import adds", old["new_modules"], new["new_modules"], 0)
    for name in old["loaded"]:
        rows.append((f"  loads {name}", module_mark(old, name), module_mark(new, name), "-"))
    old, new = tasks["released"], tasks["ours"]
    add("polls / task (median)", old["polls"], new["polls"], 0)
    add("batch reads / poll", old["reads_per_poll"], new["reads_per_poll"], 2)
    add("bytes / poll (body / batch read)", old["bytes_per_read"], new["bytes_per_read"], 1)
    add("HTTP requests / task (mean)", old["requests"], new["requests"], 1)
    add("  outside the steady polling loop", old["outside_loop"], new["outside_loop"], 1)
    for kind in sorted(set(old["by_kind"]) | set(new["by_kind"])):
        add(f"  {kind}", old["by_kind"].get(kind, 0), new["by_kind"].get(kind, 0), 1)
    add("store writes / task (set)", old["writes"], new["writes"], 1)
    if old["deletes"] or new["deletes"]:
        add("store deletes / task", old["deletes"], new["deletes"], 1)
    add("wall time / task, s (median)", old["seconds"], new["seconds"], 3)
    return rows


def goal_lines(imports: dict[str, Any], tasks: dict[str, Any]) -> list[str]:
    """Each goal with the measured ratio (printed, never asserted)."""
    measured = {
        "import": ratio(imports["ours"]["cpu_seconds"], imports["released"]["cpu_seconds"]),
        "bytes": ratio(tasks["ours"]["bytes_per_read"], tasks["released"]["bytes_per_read"]),
        "requests": ratio(tasks["ours"]["requests"], tasks["released"]["requests"]),
    }
    names = {"import": "import CPU", "bytes": "bytes per poll", "requests": "requests per task"}
    lines = []
    for key, goal in GOALS.items():
        value = measured[key]
        verdict = "?" if value is None else ("met" if value <= goal else "NOT met")
        lines.append(f"  {names[key]:18} <= {goal:.2f}x   measured {number(value, 2)}x   {verdict}")
    return lines


def warnings_for(tasks: dict[str, Any]) -> list[str]:
    """Cross-checks that would make the figures suspect."""
    notes = []
    for label, figures in tasks.items():
        if figures["client_requests"] != figures["server_requests"]:
            notes.append(
                f"{label}: the client saw {figures['client_requests']} requests, the stand-in "
                f"{figures['server_requests']}"
            )
        if not figures["polls_seen"]:
            notes.append(
                f"{label}: no polling sleeps seen; reads per poll unknown, bytes over all batch reads"
            )
        if figures["batch_states"] != ["success"]:
            notes.append(f"{label}: batch states {figures['batch_states']}")
    return notes


def print_report(imports: dict[str, Any], tasks: dict[str, Any], count: int, runs: int) -> None:
    old, new = imports["released"], imports["ours"]
    print(f"\nreleased {old['provider_version']} vs ours {new['provider_version']} ({new['provider_path']})")
    print(
        f"Airflow {new['airflow_version']}; import: median of {runs} fresh processes, with bytecode, "
        "after airflow.sdk + BaseOperator"
    )
    print(
        f"tasks: {count} each after 1 warm-up, polling every {POLLING_INTERVAL} s, deferrable=False, "
        f"default durable, job {JOB['spark.standin.startingSeconds']} s starting + "
        f"{JOB['spark.standin.durationSeconds']} s running\n"
    )
    rows = [("figure", RELEASED, "ours", "ours/4.6.4"), *table_rows(imports, tasks)]
    width = max(len(row[0]) for row in rows) + 2
    for label, released, ours, rate in rows:
        print(f"{label:<{width}}{released:>12}{ours:>12}{rate:>12}")
    print("\ngoals (ours / 4.6.4): import <= 0.10x, bytes per poll <= 2x, requests per task <= 1x")
    print("\n".join(goal_lines(imports, tasks)))
    for note in warnings_for(tasks):
        print(f"warning: {note}")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    if not OURS_PYTHON.exists():
        sys.exit(f"{OURS_PYTHON.relative_to(ROOT)} is missing: run `bash dev/test.sh --quick` first")
    started = time.perf_counter()
    pythons = {"released": ensure_released_venv(), "ours": OURS_PYTHON}
    setup_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="livy-bench-home-") as home:
        env = child_env(home)
        imports = measure_imports(pythons, env, runs)
        tasks = {
            label: task_figures(probe(python, env, "tasks", str(count))) for label, python in pythons.items()
        }
    print_report(imports, tasks, count, runs)
    print(f"\ntook {time.perf_counter() - started:.0f} s (venv setup {setup_seconds:.0f} s)")


if __name__ == "__main__":
    main()
