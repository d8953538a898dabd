"""How tagwarden runs Syft: the arguments, the private config with the credentials, the memory
cap and the clean environment it hands over, and the kill when a run outlasts its time. A
shell script stands where Syft would, recording what it was given (the real Syft against the
loopback registry is in test_sboms_real_registry.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tagwarden.vulnerabilities.syft import SyftError, SyftLimits, SyftTarget, run_syft

DIGEST = "sha256:" + "a" * 64
TARGET = SyftTarget("127.0.0.1:5999", "team/app", DIGEST, True, "robot", "s3cret")
GIB = 1024 * 1024 * 1024


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "syft"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


async def test_syft_gets_the_registry_reference_a_private_config_and_a_memory_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("TAGWARDEN_DOCKERHUB_PASSWORD", "hub-secret")
    monkeypatch.setenv("DOCKER_CONFIG", "/root/.docker")
    seen = tmp_path / "seen"
    binary = script(
        tmp_path,
        f'echo "$@" > {seen}/args\n'
        f'cp "$4" {seen}/config\n'
        f'stat -c %a "$4" > {seen}/mode\n'
        f"ulimit -v > {seen}/ulimit\n"
        f"env > {seen}/env\n"
        'out="${6#spdx-json=}"\n'
        'echo \'{"spdxVersion": "SPDX-2.3", "packages": []}\' > "$out"\n',
    )
    seen.mkdir()
    document = await run_syft(TARGET, SyftLimits(60, 2 * GIB, binary=binary))

    assert document == {"spdxVersion": "SPDX-2.3", "packages": []}
    args = (seen / "args").read_text().split()
    assert args[:2] == ["scan", f"registry:127.0.0.1:5999/team/app@{DIGEST}"]
    assert args[2] == "--config"
    assert args[4] == "--output"
    config = json.loads((seen / "config").read_text())
    assert config["registry"] == {
        "insecure-use-http": True,
        "auth": [{"authority": "127.0.0.1:5999", "username": "robot", "password": "s3cret"}],
    }
    assert config["check-for-app-update"] is False
    assert (seen / "mode").read_text().strip() == "600"
    assert int((seen / "ulimit").read_text()) == 2 * GIB // 1024  # ulimit -v counts KiB
    env = dict(
        line.split("=", 1) for line in (seen / "env").read_text().splitlines() if "=" in line
    )
    assert "TAGWARDEN_DOCKERHUB_PASSWORD" not in env
    assert env["DOCKER_CONFIG"] != "/root/.docker"  # its own, empty
    assert env["NO_PROXY"] == "127.0.0.1"  # the server's way to the registry
    assert env["SYFT_CHECK_FOR_APP_UPDATE"] == "false"
    assert env["GOMEMLIMIT"] == str(2 * GIB * 3 // 4)
    # The password was only ever in the private directory, and that is gone.
    assert "s3cret" not in " ".join(args)
    assert not _exists(args[3])


async def test_a_run_past_its_time_is_killed_and_is_an_error(tmp_path: Path) -> None:
    child = tmp_path / "child"
    binary = script(tmp_path, f"sleep 600 &\necho $! > {child}\nwait\n")
    with pytest.raises(SyftError, match=r"did not finish within 0\.5 seconds"):
        await run_syft(TARGET, SyftLimits(0.5, GIB, binary=binary))
    pid = int(child.read_text())
    # The whole process group got SIGKILL, the sleeping child too: it is gone, or a zombie
    # waiting to be reaped (the kernel may take a moment to finish it off).
    assert await _ends(pid)


def _exists(path: str) -> bool:
    return Path(path).exists()


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


async def _ends(pid: int) -> bool:
    for _ in range(200):
        if _state(pid) in (None, "Z", "X"):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_failing_run_or_an_unreadable_document_is_an_error(tmp_path: Path) -> None:
    failing = script(tmp_path, "echo 'registry said no' >&2\nexit 3\n")
    with pytest.raises(SyftError, match="Syft exited with status 3") as raised:
        await run_syft(TARGET, SyftLimits(60, GIB, binary=failing))
    assert b"registry said no" in raised.value.args[1]
    (tmp_path / "other").mkdir()
    silent = script(tmp_path / "other", "exit 0\n")
    with pytest.raises(SyftError, match="Syft wrote no document"):
        await run_syft(TARGET, SyftLimits(60, GIB, binary=silent))
