"""The agent's memory across restarts: a small JSON file, written atomically.

tmp file + fsync + rename (+ fsync of the directory): after a crash at any point the file is
either the old state or the new one, never a torn mix.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"


@dataclass
class AppMemory:
    digest: str | None = None  # what the app's container runs, as last confirmed
    image: str | None = None
    previous_id: str | None = None  # the stopped container kept for a quick rollback
    switching_to: str | None = None  # set before a switch starts, cleared when it ends
    failed_digest: str | None = None  # a target that failed here: not retried until it changes
    pulled: list[str] = field(default_factory=list)  # digests this agent pulled, oldest first


@dataclass
class AgentState:
    etag: str | None = None
    version: int | None = None  # the state version last applied
    target: dict[str, Any] | None = None  # the last target state body (None: never polled)
    apps: dict[str, AppMemory] = field(default_factory=dict)

    def app(self, name: str) -> AppMemory:
        return self.apps.setdefault(name, AppMemory())


def load(directory: Path) -> AgentState:
    path = directory / STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return AgentState()
    except (OSError, ValueError):
        # An unreadable state is a fresh start: converging from the engine is always safe.
        return AgentState()
    apps = {
        name: AppMemory(**{k: v for k, v in memory.items() if k in AppMemory.__dataclass_fields__})
        for name, memory in (raw.get("apps") or {}).items()
    }
    return AgentState(
        etag=raw.get("etag"), version=raw.get("version"), target=raw.get("target"), apps=apps
    )


def save(directory: Path, state: AgentState) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    tmp = directory / f".{STATE_FILE}.{os.getpid()}.tmp"
    data = json.dumps(asdict(state), indent=1, sort_keys=True).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
