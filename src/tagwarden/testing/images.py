"""Small real images without the internet: ``FROM scratch`` around a static busybox.

Shared by the agent's end-to-end tests, ``bench/agent_footprint.py`` and ``tagwarden demo``'s
real-container mode. An image serves ``/www`` with busybox's httpd on 127.0.0.1:8080, has a
``HEALTHCHECK`` that tests ``/www/ok`` and stops at once on SIGTERM. ``v3`` lacks that file (it
turns ``unhealthy``); ``v4`` exits at once (a crash loop); any other version is good.

Built through the engine's ``/build`` API with a tar context and pushed to a registry. The
caller passes a Docker SDK client in: this module imports no SDK, so the server package needs
none at runtime.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path
from typing import Any

BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static
HEALTH_INTERVAL = "200ms"
UNHEALTHY_VERSION = "v3"
CRASHING_VERSION = "v4"
# Podman's compatible push sends no ``aux`` record, only Docker's closing status line.
_PUSHED = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def dockerfile(version: str, *, health_interval: str = HEALTH_INTERVAL) -> str:
    health = "" if version == UNHEALTHY_VERSION else "COPY ok /www/ok\n"
    # PID 1 ignores SIGTERM unless it handles it: the shell does, so a stop (an update's
    # switch) takes milliseconds rather than the engine's 10 s grace before SIGKILL.
    serve = "trap 'exit 0' TERM; /bin/busybox httpd -f -p 127.0.0.1:8080 -h /www & wait"
    command = (
        '["/bin/busybox", "false"]'
        if version == CRASHING_VERSION
        else f'["/bin/busybox", "sh", "-c", "{serve}"]'
    )
    return (
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        "COPY version /www/version\n"
        f"{health}"
        f"HEALTHCHECK --interval={health_interval} --timeout=2s --retries=2 "
        'CMD ["/bin/busybox", "test", "-f", "/www/ok"]\n'
        f'LABEL org.opencontainers.image.version="{version}"\n'
        f"CMD {command}\n"
    )


def build_context(
    version: str, *, busybox: Path = BUSYBOX, health_interval: str = HEALTH_INTERVAL
) -> io.BytesIO:
    """The build context as a tar: the Dockerfile, busybox, a version file and a health file."""
    files = {
        "Dockerfile": (dockerfile(version, health_interval=health_interval).encode(), 0o644),
        "version": (f"{version}\n".encode(), 0o644),
        "ok": (b"ok\n", 0o644),
        "busybox": (busybox.read_bytes(), 0o755),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def build_and_push(
    client: Any,
    name: str,
    version: str,
    *,
    auth: dict[str, str] | None = None,
    health_interval: str = HEALTH_INTERVAL,
) -> str:
    """Build ``name:version`` (``name`` is ``host:port/repo``) with ``client`` (a
    ``docker.DockerClient``), push it, forget it locally (whoever runs it must pull it), and
    return its digest as the registry knows it."""
    client.images.build(
        fileobj=build_context(version, health_interval=health_interval),
        custom_context=True,
        tag=f"{name}:{version}",
        rm=True,
    )
    digest = None
    for line in client.api.push(name, tag=version, auth_config=auth, stream=True, decode=True):
        if "error" in line:
            raise RuntimeError(f"push of {name}:{version} failed: {line['error']}")
        digest = line.get("aux", {}).get("Digest") or _status_digest(line) or digest
    if not digest:
        raise RuntimeError(f"push of {name}:{version} reported no digest")
    client.images.remove(f"{name}:{version}", force=True)
    return str(digest)


def _status_digest(line: dict[str, Any]) -> str | None:
    found = _PUSHED.search(str(line.get("status") or ""))
    return found.group(1) if found else None
