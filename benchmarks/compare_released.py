"""
Our provider against the released apache-airflow-providers-apache-livy 4.6.4, side by side in one run.

Installs 4.6.4 into benchmarks/.venv-4.6.4 (the pinned packages of dev/requirements/airflow-3.3.txt,
the released provider and the stand-in; reused when the pins have not changed), starts one Livy
stand-in on 127.0.0.1 (in this process; its log buffer holds every line, so 4.6.4's end-of-run dump
shows the same lines our live log does), then runs compare_released_probe.py in both venvs and
prints, each figure as ours / 4.6.4:

* the CPU time a DAG file pays to import the operator;
* per completed polling task (default ``durable``), a quiet job and a chatty one: HTTP requests,
  bytes received (status line, headers, body), task state store writes, worker CPU, lines shown;
* one triggerer process holding 200 and 500 deferred tasks at once: CPU per poll, peak memory per
  trigger, event size; ours with and without the live log;
* how the per-task figures grow from 10 to 10,000 log lines and from 10 to 1,000 polls;
* the goals, met or not (printed, never asserted).

    PATH=.venvs/.uv/bin:$PATH .venvs/airflow-3.3/bin/python benchmarks/compare_released.py [--quick]
    (after bash dev/test.sh --quick; --quick: fewer tasks and sizes, for a smoke run)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from livy_standin import LivyStandin

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
PROBE = BENCH / "compare_released_probe.py"
OURS_PYTHON = ROOT / ".venvs" / "airflow-3.3" / "bin" / "python"
RELEASED = "4.6.4"
RELEASED_VENV = BENCH / f".venv-{RELEASED}"
REQUIREMENTS = ROOT / "dev" / "requirements" / "airflow-3.3.txt"
PYCACHE = BENCH / ".pycache"


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


INTERVAL = 0.02
"""Seconds between two polls of a task (each poll also costs a request): identical for both providers."""
LOG_RING = 20_000
"""The stand-in's log buffer: every line of the largest job, so 4.6.4's final dump shows them all."""
PROFILES = {"quiet": {"lines": 5, "polls": 50}, "chatty": {"lines": 1000, "polls": 60}}
"""A quiet job (5 lines) and a chatty one (1,000 lines over ~60 polls)."""
GOALS = [
    ("import CPU", "import", "cpu", 0.10),
    ("requests / task, quiet job", "quiet", "requests", 1.0),
    ("requests / task, chatty job", "chatty", "requests", 1.1),
    ("bytes / task, quiet job", "quiet", "bytes", 1.5),
    ("bytes / task, chatty job", "chatty", "bytes", 1.5),
    ("store writes / task (<= 4)", "chatty", "writes", None),
    ("triggerer CPU / poll, 500 triggers", "triggers-500", "cpu_per_poll", 1.0),
    ("triggerer memory / trigger, 500", "triggers-500", "rss_per_trigger_kib", 1.2),
]
"""(label, section, figure, goal for ours / 4.6.4); ``None``: an absolute goal (store writes <= 4)."""


def number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio(ours: float | None, released: float | None) -> float | None:
    return ours / released if ours is not None and released else None


def mean_of(tasks: list[dict[str, Any]], key: str) -> float:
    return statistics.mean(task[key] for task in tasks)


# ---- Per task ----------------------------------------------------------------------------------


def run_tasks(
    pythons: dict[str, Path], env: dict[str, str], url: str, lines: int, polls: int, count: int
) -> dict[str, dict[str, Any]]:
    """Each provider's mean figures over ``count`` polling tasks of one job profile."""
    spec = {"url": url, "tasks": count, "lines": lines, "polls": polls, "interval": INTERVAL}
    figures = {}
    for label, python in pythons.items():
        tasks = probe(python, env, "tasks", json.dumps(spec))["tasks"]
        figures[label] = {
            key: mean_of(tasks, key) for key in ("requests", "bytes", "writes", "cpu_seconds", "lines_shown")
        }
        figures[label]["every_line_once"] = all(
            task["lines_shown"] == task["lines_distinct"] == lines and task["lines_in_order"]
            for task in tasks
        )
        figures[label]["by_kind"] = {
            kind: statistics.mean(task["by_kind"].get(kind, 0) for task in tasks)
            for kind in sorted({kind for task in tasks for kind in task["by_kind"]})
        }
    return figures


Row = tuple[str, str, str, str]
FigureSpec = tuple[str, str, int, float]
"""(key, label, digits, scale) of one figure in a table."""


def figure_rows(old: dict[str, Any], new: dict[str, Any], specs: list[FigureSpec], indent: str) -> list[Row]:
    """One row per figure: 4.6.4's, ours, and the ratio."""
    rows = []
    for key, label, digits, scale in specs:
        rate = ratio(new[key], old[key])
        rows.append(
            (
                f"{indent}{label}",
                number(old[key] * scale, digits),
                number(new[key] * scale, digits),
                number(rate) + "x" if rate is not None else "-",
            )
        )
    return rows


TASK_FIGURES: list[FigureSpec] = [
    ("requests", "HTTP requests / task", 1, 1),
    ("bytes", "bytes received / task", 0, 1),
    ("writes", "store writes / task", 1, 1),
    ("cpu_seconds", "worker CPU / task, ms", 1, 1000),
    ("lines_shown", "job lines shown / task", 0, 1),
]
TRIGGER_FIGURES: list[FigureSpec] = [
    ("cpu_per_poll", "CPU / poll, ms", 3, 1000),
    ("rss_per_trigger_kib", "peak memory / trigger, KiB", 1, 1),
    ("requests_per_trigger", "Livy requests / trigger", 1, 1),
    ("event_bytes", "event size, bytes", 0, 1),
    ("lines_logged_per_trigger", "job lines the trigger logged", 1, 1),
]


def task_rows(name: str, figures: dict[str, dict[str, Any]]) -> list[Row]:
    old, new = figures["released"], figures["ours"]
    rows: list[Row] = [(f"{name} job", "", "", ""), *figure_rows(old, new, TASK_FIGURES, "  ")]
    for kind in sorted(set(old["by_kind"]) | set(new["by_kind"])):
        rows.append(
            (
                f"    {kind}",
                number(old["by_kind"].get(kind, 0), 1),
                number(new["by_kind"].get(kind, 0), 1),
                "",
            )
        )
    shown = {label: "yes" if figures[label]["every_line_once"] else "NO" for label in figures}
    rows.append(("  every line shown once, in order", shown["released"], shown["ours"], ""))
    return rows


# ---- The triggerer -----------------------------------------------------------------------------


def create_batches(url: str, count: int, seconds: float, lines: int, prefix: str) -> list[tuple[int, str]]:
    """``count`` batches that run ``seconds`` and log ``lines`` lines; their (id, name)."""
    conf = {
        "spark.standin.startingSeconds": "0.1",
        "spark.standin.durationSeconds": str(seconds),
        "spark.standin.logLines": str(lines),
    }
    created = []
    for index in range(count):
        name = f"{prefix}-{index}"
        reply = requests.post(
            f"{url}/batches", json={"file": "pi.py", "name": name, "conf": conf}, timeout=30
        )
        created.append((reply.json()["id"], name))
    return created


def polls_served(livy: LivyStandin) -> int:
    counts = livy.stats()["requests"]
    return sum(counts.get(kind, 0) for kind in ("GET /batches/{id}/state", "GET /batches/{id}"))


def log_reads_served(livy: LivyStandin) -> int:
    return livy.stats()["requests"].get("GET /batches/{id}/log", 0)


def run_triggers(
    livy: LivyStandin, python: Path, env: dict[str, str], count: int, *, follow_log: bool, seconds: float
) -> dict[str, Any]:
    """One triggerer process holding ``count`` triggers at once; CPU per poll, memory per trigger."""
    interval = 2.0
    batches = create_batches(
        livy.url, count, seconds, lines=int(5 * seconds / interval), prefix=f"t{time.time_ns()}"
    )
    polls, logs = polls_served(livy), log_reads_served(livy)
    spec = {
        "url": livy.url,
        "batches": batches,
        "interval": interval,
        "follow_log": follow_log,
        "named": True,
    }
    result = probe(python, env, "triggers", json.dumps(spec))
    polls, logs = polls_served(livy) - polls, log_reads_served(livy) - logs
    return {
        "cpu_per_poll": result["cpu_seconds"] / max(1, polls),
        "requests_per_trigger": (polls + logs) / count,
        "rss_per_trigger_kib": result["rss_growth_kib"] / count,
        "event_bytes": statistics.mean(result["event_bytes"]),
        "statuses": result["statuses"],
        "seconds": result["seconds"],
        "lines_logged_per_trigger": result["lines_logged"] / count,
    }


def trigger_rows(count: int, figures: dict[str, dict[str, Any]]) -> list[Row]:
    rows: list[Row] = [(f"triggerer, {count} deferred tasks", "4.6.4", "", "")]
    for mode in ("ours, live log", "ours, no live log"):
        rows.append((f"  {mode}", "", "", ""))
        rows += figure_rows(figures["released"], figures[mode], TRIGGER_FIGURES, "    ")
    return rows


# ---- Growth ------------------------------------------------------------------------------------


def growth_rows(
    axis: str, sizes: list[int], figures: dict[int, dict[str, dict[str, Any]]]
) -> list[tuple[str, str, str, str]]:
    """Each figure at each size, and its growth exponent (1.0: linear) from the smallest to the largest."""
    rows = []
    small, large = sizes[0], sizes[-1]
    for key, label in (
        ("requests", "requests"),
        ("bytes", "bytes"),
        ("writes", "writes"),
        ("cpu_seconds", "CPU"),
    ):
        for label_of, provider in (("4.6.4", "released"), ("ours", "ours")):
            values = [figures[size][provider][key] for size in sizes]
            exponent = (
                math.log(values[-1] / values[0]) / math.log(large / small)
                if values[0] and values[-1]
                else 0.0
            )
            shown = " / ".join(number(value * (1000 if key == "cpu_seconds" else 1), 0) for value in values)
            rows.append((f"  {label} ({label_of})", shown, f"exponent {exponent:.2f}", ""))
    header = (f"by {axis}: " + " / ".join(str(size) for size in sizes), "", "", "")
    return [header, *rows]


# ---- Report ------------------------------------------------------------------------------------


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    width = max(len(row[0]) for row in rows) + 2
    print(f"{'figure':<{width}}{RELEASED:>14}{'ours':>14}{'ours/4.6.4':>12}")
    for label, released, ours, rate in rows:
        if not released and not ours and not rate:
            print(label)
        else:
            print(f"{label:<{width}}{released:>14}{ours:>14}{rate:>12}")


def goal_lines(measured: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Each goal with the measured figure (printed, never asserted)."""
    lines = []
    for label, section, key, goal in GOALS:
        figures = measured.get(section)
        if figures is None:
            continue
        if goal is None:
            value = figures["ours"][key]
            verdict = "met" if value <= 4 else "NOT met"
            lines.append(f"  {label:38} measured {number(value, 1):>7}     {verdict}")
            continue
        ours = figures.get("ours, live log", figures.get("ours"))
        value = ratio(ours[key], figures["released"][key])
        verdict = "?" if value is None else ("met" if value <= goal else "NOT met")
        lines.append(f"  {label:38} <= {goal:.2f}x  measured {number(value)}x   {verdict}")
    return lines


def main() -> None:
    quick = "--quick" in sys.argv
    if not OURS_PYTHON.exists():
        sys.exit(f"{OURS_PYTHON.relative_to(ROOT)} is missing: run `bash dev/test.sh --quick` first")
    started = time.perf_counter()
    pythons = {"released": ensure_released_venv(), "ours": OURS_PYTHON}
    setup_seconds = time.perf_counter() - started
    tasks, triggers = (1, [50]) if quick else (3, [200, 500])
    line_sizes, poll_sizes = ([10, 1000], [10, 100]) if quick else ([10, 100, 1000, 10_000], [10, 100, 1000])
    measured: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="livy-bench-home-") as home:
        env = child_env(home)
        imports = measure_imports(pythons, env, 3 if quick else 7)
        measured["import"] = {label: {"cpu": imports[label]["cpu_seconds"]} for label in pythons}
        with LivyStandin(host="127.0.0.1", port=0, quiet=True, log_ring=LOG_RING) as livy:
            for name, profile in PROFILES.items():
                measured[name] = run_tasks(pythons, env, livy.url, profile["lines"], profile["polls"], tasks)
            by_lines = {size: run_tasks(pythons, env, livy.url, size, 60, 1) for size in line_sizes}
            by_polls = {size: run_tasks(pythons, env, livy.url, 100, size, 1) for size in poll_sizes}
            for count in triggers:
                job_seconds = 20.0
                measured[f"triggers-{count}"] = {
                    "released": run_triggers(
                        livy, pythons["released"], env, count, follow_log=False, seconds=job_seconds
                    ),
                    "ours, live log": run_triggers(
                        livy, OURS_PYTHON, env, count, follow_log=True, seconds=job_seconds
                    ),
                    "ours, no live log": run_triggers(
                        livy, OURS_PYTHON, env, count, follow_log=False, seconds=job_seconds
                    ),
                }
    old, new = imports["released"], imports["ours"]
    print(f"\nreleased {old['provider_version']} vs ours {new['provider_version']} ({new['provider_path']})")
    print(f"Airflow {new['airflow_version']}; a poll every {INTERVAL} s for tasks, every 2 s for triggers")
    rows = [
        (
            "import CPU, ms (median of fresh processes)",
            number(old["cpu_seconds"] * 1000, 1),
            number(new["cpu_seconds"] * 1000, 1),
            number(ratio(new["cpu_seconds"], old["cpu_seconds"])) + "x",
        ),
    ]
    for name in PROFILES:
        rows += task_rows(
            f"{name} ({PROFILES[name]['lines']} lines, ~{PROFILES[name]['polls']} polls),", measured[name]
        )
    for count in triggers:
        rows += trigger_rows(count, measured[f"triggers-{count}"])
    print()
    print_table(rows)
    print("\ngrowth per task (values at each size; exponent 1.0 = linear, below = better)")
    print_table(
        [
            *growth_rows("log lines (60 polls)", line_sizes, by_lines),
            *growth_rows("polls (100 lines)", poll_sizes, by_polls),
        ]
    )
    print("\ngoals (ours / 4.6.4 unless said)")
    print("\n".join(goal_lines(measured)))
    for count in triggers:
        for mode, figures in measured[f"triggers-{count}"].items():
            if figures["statuses"] != ["success"]:
                print(f"warning: {count} triggers, {mode}: event statuses {figures['statuses']}")
    print(f"\ntook {time.perf_counter() - started:.0f} s (venv setup {setup_seconds:.0f} s)")


if __name__ == "__main__":
    main()
