"""``tagwarden-agent run`` and ``tagwarden-agent status`` (argparse: no dependency more)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from tagwarden_agent import state as state_file
from tagwarden_agent.agent import Agent, Options
from tagwarden_agent.engine import DIGEST_LABEL, Engine

ENV = "TAGWARDEN_AGENT_"
DEFAULT_STATE_DIR = "/var/lib/tagwarden-agent"
DEFAULT_LOCK_FILE = "/run/tagwarden/updates.lock"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV + name, default)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="tagwarden-agent", description="Run tagwarden's target state in a container engine."
    )
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="poll the server and keep the engine on target")
    status = commands.add_parser("status", help="target vs running, per app")
    for sub in (run, status):
        sub.add_argument("--device", default=_env("DEVICE"), help=f"the device uuid ({ENV}DEVICE)")
        sub.add_argument(
            "--state-dir",
            type=Path,
            default=Path(_env("STATE_DIR", DEFAULT_STATE_DIR) or DEFAULT_STATE_DIR),
            help=f"where the state file lives ({ENV}STATE_DIR)",
        )
    run.add_argument("--server", default=_env("SERVER"), help=f"tagwarden's URL ({ENV}SERVER)")
    run.add_argument(
        "--key-file", type=Path, default=_env("KEY_FILE"), help=f"the device key ({ENV}KEY_FILE)"
    )
    run.add_argument(
        "--lock-file",
        type=Path,
        default=Path(_env("LOCK_FILE", DEFAULT_LOCK_FILE) or DEFAULT_LOCK_FILE),
        help=f"while it exists, updates are pre-pulled, not switched ({ENV}LOCK_FILE)",
    )
    run.add_argument(
        "--docker-config",
        type=Path,
        default=_env("DOCKER_CONFIG"),
        help="registry credentials (a docker config.json; default ~/.docker/config.json)",
    )
    run.add_argument(
        "--settle-seconds",
        type=float,
        default=float(_env("SETTLE_SECONDS", "10") or 10),
        help="without a healthcheck: how long a new container must run without a restart",
    )
    run.add_argument(
        "--health-timeout",
        type=float,
        default=float(_env("HEALTH_TIMEOUT", "120") or 120),
        help="with a healthcheck: how long a new container may take to become healthy",
    )
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get(ENV + "LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if not args.device:
        print(f"--device (or {ENV}DEVICE) is required", file=sys.stderr)
        return 2
    if args.command == "status":
        return status(args.device, args.state_dir)
    if not args.server or not args.key_file:
        print(f"--server and --key-file (or {ENV}SERVER, {ENV}KEY_FILE) are required",
              file=sys.stderr)  # fmt: skip
        return 2
    key = Path(args.key_file).read_text().strip()
    options = Options(
        server=args.server,
        device=args.device,
        key=key,
        state_dir=args.state_dir,
        lock_file=args.lock_file,
        settle_seconds=args.settle_seconds,
        health_timeout=args.health_timeout,
    )
    engine = Engine(args.device, docker_config=args.docker_config)
    agent = Agent(options, engine)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()  # the containers keep running: they are the engine's, not ours

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        agent.run(stop)
    finally:
        agent.close()
    return 0


def status(device: str, state_dir: Path) -> int:
    memory = state_file.load(state_dir)
    targets = (memory.target or {}).get("apps") or {}
    engine = Engine(device)
    try:
        found = engine.containers()
        names = sorted(set(targets) | set(found))
        # Digests in full: a shortened one cannot be compared with what the server shows.
        width = max([len(a) for a in names] + [3]) + 2
        print(f"{'APP':<{width}} {'TARGET':<72} {'RUNNING':<72} STATE")
        for app in names:
            target = str((targets.get(app) or {}).get("digest") or "-")
            main = [c for c in found.get(app, []) if c.name == engine.container_name(app)]
            if main:
                now = engine.health(main[0])
                running = str(main[0].labels.get(DIGEST_LABEL) or "-")
                shown = now.status + (f" ({now.health})" if now.health else "")
            else:
                running, shown = "-", "not running"
            mark = "" if running == target else "  (differs)"
            print(f"{app:<{width}} {target:<72} {running:<72} {shown}{mark}")
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
