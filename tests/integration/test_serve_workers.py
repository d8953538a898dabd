"""`tagwarden serve --workers N`: N server processes on one port, each with its own app (and so
its own device index), answering on both databases."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The parent's pid is the second field after the command's closing parenthesis.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_serve_with_two_workers_runs_two_server_processes_on_one_port(database_url: str) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGWARDEN_")} | {
        "TAGWARDEN_DATABASE_URL": database_url,
        "TAGWARDEN_PORT": str(port),
        "TAGWARDEN_MONITOR_ENABLED": "false",
        "TAGWARDEN_ROLLOUT_WORKER_ENABLED": "false",
        "TAGWARDEN_LOG_LEVEL": "WARNING",
    }
    command = [str(Path(sys.executable).parent / "tagwarden"), "serve", "--no-migrate"]
    server = subprocess.Popen([*command, "--workers", "2"], env=env)
    try:
        deadline = time.monotonic() + 60
        answered = 0
        while time.monotonic() < deadline and answered < 20:
            try:
                answered += httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
        assert answered == 20
        assert server.poll() is None
        # The supervisor's own children: the two server processes (spawned, not threads).
        while time.monotonic() < deadline and len(_children(server.pid)) < 2:
            time.sleep(0.2)
        assert len(_children(server.pid)) >= 2
    finally:
        server.terminate()
        server.wait(timeout=30)
