"""Credentials the way docker reads them: config.json's auths, credHelpers and credsStore, a
``docker-credential-test`` helper written here and put on PATH, asked again after a 401, and
never logged. The registry is the fake on a loopback address, served in-process."""

from __future__ import annotations

import base64
import json
import logging
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tagwarden.config import RegistryCredentials
from tagwarden.registry import AuthenticationFailed, RegistryState, client_for
from tagwarden.registry.credentials import DockerConfig, run_helper
from tagwarden.registry.oci import OciClient
from tagwarden.testing import FakeClock, FakeRegistry
from tests.factories import make_settings

HOST = "127.0.0.1:5081"
URL = f"http://{HOST}"
SECRET = "helper-secret-7f3a9c"

HELPER = """#!{python}
import json, os, sys, time
server = sys.stdin.read()
with open(os.environ["HELPER_CALLS"], "a") as calls:
    calls.write(sys.argv[1] + " " + server + "\\n")
answer = json.load(open(os.environ["HELPER_ANSWER"]))
if answer.get("sleep"):
    time.sleep(answer["sleep"])
if answer.get("fail"):
    print(answer["fail"])  # helpers write errors to stdout
    sys.exit(1)
print(json.dumps({{"ServerURL": server, "Username": answer["user"], "Secret": answer["secret"]}}))
"""


class Helper:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        bin_dir = root / "bin"
        bin_dir.mkdir()
        script = bin_dir / "docker-credential-test"
        script.write_text(HELPER.format(python=sys.executable))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        self.calls_file = root / "calls"
        self.answer_file = root / "answer.json"
        monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
        monkeypatch.setenv("HELPER_CALLS", str(self.calls_file))
        monkeypatch.setenv("HELPER_ANSWER", str(self.answer_file))
        self.answer(user="ci", secret=SECRET)

    def answer(self, **answer: Any) -> None:
        self.answer_file.write_text(json.dumps(answer))

    @property
    def calls(self) -> list[str]:
        if not self.calls_file.exists():
            return []
        return self.calls_file.read_text().splitlines()


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Helper:
    return Helper(tmp_path, monkeypatch)


@pytest.fixture
def fake() -> FakeRegistry:
    fake = FakeRegistry(clock=FakeClock(), pull_limit=None)
    fake.add_repository("team/private", 3, private=True)
    fake.add_user("ci", SECRET)
    return fake


@pytest.fixture
async def http(fake: FakeRegistry) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport()) as client:
        yield client


def write_config(path: Path, document: dict[str, Any]) -> str:
    path.write_text(json.dumps(document))
    return str(path)


def client(
    http: httpx.AsyncClient, fake: FakeRegistry, config: str, state: RegistryState, **entry: Any
) -> OciClient:
    settings = make_settings(
        registries={HOST: RegistryCredentials(url=URL, **entry)},
        docker_config=config,
        credential_helper_timeout_seconds=5.0,
    )
    made = client_for(HOST, settings, http, state=state)
    assert isinstance(made, OciClient)
    return made


async def names(c: OciClient) -> list[str]:
    return [name async for name in c.list_tags("team/private")]


async def test_a_cred_helper_serves_the_registry_and_is_asked_once(
    fake: FakeRegistry, http: httpx.AsyncClient, helper: Helper, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.json", {"credHelpers": {HOST: "test"}})
    state = RegistryState(clock=fake.clock)
    assert len(await names(client(http, fake, config, state))) == 3
    assert len(await names(client(http, fake, config, state))) == 3
    assert helper.calls == [f"get {HOST}"]  # the server URL on stdin, once
    assert fake.stats.matching("oci_token")[-1].username == "ci"


async def test_a_401_makes_tagwarden_ask_the_helper_again(
    fake: FakeRegistry,
    http: httpx.AsyncClient,
    helper: Helper,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = fake.clock
    assert isinstance(clock, FakeClock)
    config = write_config(tmp_path / "config.json", {"credsStore": "test"})
    state = RegistryState(clock=fake.clock)
    assert len(await names(client(http, fake, config, state))) == 3
    # The secret is rotated (ECR's tokens last 12 hours) and the registry token has expired.
    fake.add_user("ci", "rotated-secret-41b2")
    helper.answer(user="ci", secret="rotated-secret-41b2")
    clock.advance(3600)
    assert len(await names(client(http, fake, config, state))) == 3
    assert len(helper.calls) == 2
    assert fake.stats.count("oci_token", status=401) == 1
    # A helper that fails, echoing what it holds, is not repeated either.
    helper.answer(fail=f"error: cannot unlock keychain for {SECRET}")
    fake.add_user("ci", "third-secret-c0de")
    clock.advance(3600)
    with pytest.raises(AuthenticationFailed):
        await names(client(http, fake, config, state))
    assert SECRET not in caplog.text
    assert "rotated-secret-41b2" not in caplog.text
    assert "docker-credential-test get failed" in caplog.text


async def test_auths_basic_and_identity_token_entries(
    fake: FakeRegistry, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    basic = base64.b64encode(f"ci:{SECRET}".encode()).decode()
    config = write_config(tmp_path / "a.json", {"auths": {f"https://{HOST}/v1/": {"auth": basic}}})
    assert len(await names(client(http, fake, config, RegistryState(clock=fake.clock)))) == 3

    identity = fake.native.add_identity_token("ci")
    config = write_config(tmp_path / "b.json", {"auths": {HOST: {"identitytoken": identity}}})
    fake.stats.reset()
    assert len(await names(client(http, fake, config, RegistryState(clock=fake.clock)))) == 3
    # The identity token is an OAuth2 refresh token, traded by form POST, never sent as Basic.
    [trade] = fake.stats.matching("oci_token", "POST")
    assert trade.status == 200
    assert fake.stats.count("oci_token", "GET") == 0


async def test_explicit_settings_win_over_the_docker_config(
    fake: FakeRegistry, http: httpx.AsyncClient, helper: Helper, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.json", {"credsStore": "test"})
    c = client(http, fake, config, RegistryState(clock=fake.clock),
               username="ci", password=SecretStr(SECRET))  # fmt: skip
    assert len(await names(c)) == 3
    assert helper.calls == []


async def test_helper_order_not_found_and_time_bound(helper: Helper, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.json",
        {
            "credsStore": "test",
            "auths": {"127.0.0.2:5000": {}, HOST: {"auth": base64.b64encode(b"u:p").decode()}},
        },
    )
    helper.answer(fail="credentials not found in native keychain")
    found = await DockerConfig(config).get(HOST)
    assert found is not None
    assert (found.username, found.secret) == ("u", "p")  # the helper had none: auths answer
    assert "'p'" not in repr(found)
    helper.answer(user="<token>", secret="idt", sleep=30)
    assert run_helper("test", HOST, timeout=0.5) is None  # bounded: killed, no credentials


async def test_harbor_api_takes_the_helpers_robot_account_and_asks_again_after_a_401(
    fake: FakeRegistry, http: httpx.AsyncClient, helper: Helper, tmp_path: Path
) -> None:
    fake.add_repository("proj/app", 4, private=True)
    fake.add_user("robot$proj+ci", SECRET)
    helper.answer(user="robot$proj+ci", secret=SECRET)
    config = write_config(tmp_path / "config.json", {"credHelpers": {HOST: "test"}})
    state = RegistryState(clock=fake.clock)
    c = client(http, fake, config, state, kind="harbor")
    assert len([t async for t in c.iter_tags("proj/app", {})]) == 4
    fake.add_user("robot$proj+ci", "rotated-robot-9d1e")
    helper.answer(user="robot$proj+ci", secret="rotated-robot-9d1e")
    c = client(http, fake, config, state, kind="harbor")
    assert len([t async for t in c.iter_tags("proj/app", {})]) == 4
    assert len(helper.calls) == 2
    statuses = [r.status for r in fake.stats.matching("harbor_artifacts")]
    assert statuses == [200, 401, 200]
    assert fake.stats.count("oci_tags") == 0  # never fell back: the API took the new secret
