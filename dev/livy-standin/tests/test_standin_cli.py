"""The command line: free port, port file, the listening line, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests
from standin_helpers import wait_for

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_cli_serves_on_a_free_port_and_stops_on_sigterm(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    cmd = [sys.executable, "-m", "livy_standin", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--port-file", str(port_file), "--csrf", "--livy-version", "0.8.0-incubating"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        wait_for(lambda: port_file.exists(), timeout=10)
        port = int(port_file.read_text())
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"livy-standin listening on http://127.0.0.1:{port}\n"
        url = f"http://127.0.0.1:{port}"
        assert requests.get(url + "/version", timeout=5).json()["version"] == "0.8.0-incubating"
        assert requests.post(url + "/batches", json={"file": "a.py"}, timeout=5).status_code == 400  # csrf
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert "POST /batches -> 400" in proc.stderr.read()  # one log line per request
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_refuses_a_non_loopback_host() -> None:
    cmd = [sys.executable, "-m", "livy_standin", "--host", "0.0.0.0", "--port", "0"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=10)
    assert result.returncode == 2
    assert "loopback" in result.stderr
