"""Registry credentials read the way docker reads them: a ``config.json`` and its helpers.

Order per host, as docker/cli: ``credHelpers[host]``, then ``credsStore``, then ``auths``
(``auth`` is base64 ``user:password``, ``identitytoken`` an OAuth refresh token). A helper is
``docker-credential-<name> get`` with the server URL on stdin, answering
``{"ServerURL","Username","Secret"}``; ``Username`` ``<token>`` means ``Secret`` is an identity
token. The helper runs in a thread (never on the event loop) and gets a bounded time. What it
gives is kept until the registry refuses it: a 401 makes the next request ask again (ECR's
tokens last 12 hours, a rotated secret should not need a restart). Secrets are never logged,
never in an error, never in a repr.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import shutil
import subprocess
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagwarden.references import DOCKER_HUB_HOSTS
from tagwarden.registry.base import AuthenticationFailed
from tagwarden.registry.oci import OciClient
from tagwarden.registry.tokens import IDENTITY_TOKEN_USER

log = logging.getLogger("tagwarden.registry")

DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
_NOT_FOUND = "credentials not found"


@dataclass(frozen=True, slots=True)
class Credential:
    """A user and its secret (a password, a token; the identity token when the user is
    :data:`IDENTITY_TOKEN_USER`)."""

    username: str | None
    secret: str = field(repr=False)

    @property
    def is_identity_token(self) -> bool:
        return self.username == IDENTITY_TOKEN_USER


def server_key(host: str) -> str:
    """How config.json names a host: Docker Hub as its v1 URL, others as ``host[:port]``."""
    host = host.strip().lower().removesuffix("/")
    return DOCKER_HUB_SERVER if host in DOCKER_HUB_HOSTS else host


def _hostname(key: str) -> str:
    """``https://host:port/path`` (legacy keys) → ``host:port``; Docker Hub → its v1 URL."""
    bare = key.strip().lower()
    for scheme in ("https://", "http://"):
        bare = bare.removeprefix(scheme)
    bare = bare.split("/", 1)[0]
    return server_key(bare)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("docker config %s does not exist; no credentials from it", path)
        return {}
    except (OSError, ValueError) as exc:
        log.warning("docker config %s is unreadable (%s)", path, type(exc).__name__)
        return {}
    return document if isinstance(document, dict) else {}


def _from_auths(config: dict[str, Any], key: str) -> Credential | None:
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    for name, entry in auths.items():
        if not isinstance(entry, dict) or _hostname(str(name)) != key:
            continue
        token = entry.get("identitytoken")
        if isinstance(token, str) and token:
            return Credential(IDENTITY_TOKEN_USER, token)
        raw = entry.get("auth")
        if isinstance(raw, str) and raw:
            try:
                user, colon, password = base64.b64decode(raw).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                log.warning("docker config: the auth of %s is not base64 user:password", key)
                return None
            if colon:
                return Credential(user, password)
    return None


def run_helper(name: str, server: str, timeout: float) -> Credential | None:
    """``docker-credential-<name> get``; None when it has nothing for ``server``."""
    program = f"docker-credential-{name}"
    executable = shutil.which(program)
    if executable is None:
        log.warning("%s is not on PATH; no credentials for %s", program, server)
        return None
    try:
        done = subprocess.run(  # noqa: S603 - a helper the operator named, no shell
            [executable, "get"], input=server.encode(), capture_output=True,
            timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        log.warning("%s get did not answer for %s within %.0fs", program, server, timeout)
        return None
    if done.returncode != 0:
        # Helpers write errors to stdout; only the documented "not found" is read, nothing
        # of it is repeated (a broken helper might echo what it was given).
        if _NOT_FOUND not in done.stdout.decode(errors="replace").lower():
            log.warning("%s get failed for %s (exit %d)", program, server, done.returncode)
        return None
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        log.warning("%s get answered %s with something other than JSON", program, server)
        return None
    secret = answer.get("Secret") if isinstance(answer, dict) else None
    if not isinstance(secret, str) or not secret:
        return None
    user = answer.get("Username")
    return Credential(user if isinstance(user, str) and user else None, secret)


class DockerConfig:
    """One config.json and what it gave per host, until a registry refuses it."""

    def __init__(self, path: str | Path, *, timeout: float = 10.0) -> None:
        self.path = Path(path).expanduser()
        self.timeout = timeout
        self._cache: dict[str, Credential | None] = {}
        # Per event loop: the process-wide config outlives loops (every test has its own).
        self._locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()
        self.lookups = 0  # how many times a host was looked up (not served from the cache)

    async def get(self, host: str) -> Credential | None:
        key = server_key(host)
        if key in self._cache:
            return self._cache[key]
        # Many requests finding the cache empty at once ask the helper once.
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        async with locks.setdefault(key, asyncio.Lock()):
            if key not in self._cache:
                self.lookups += 1
                self._cache[key] = await asyncio.to_thread(self._lookup, key)
        return self._cache[key]

    def forget(self, host: str) -> None:
        self._cache.pop(server_key(host), None)

    def _lookup(self, key: str) -> Credential | None:
        config = _read_config(self.path)
        helpers = config.get("credHelpers")
        names: list[str] = []
        if isinstance(helpers, dict):
            names += [str(v) for k, v in helpers.items() if _hostname(str(k)) == key and v]
        if isinstance(config.get("credsStore"), str) and config["credsStore"]:
            names.append(config["credsStore"])
        for name in names:
            found = run_helper(name, key, self.timeout)
            if found is not None:
                return found
        return _from_auths(config, key)


_configs: dict[tuple[str, float], DockerConfig] = {}


def docker_config(path: str, timeout: float) -> DockerConfig:
    """One per path for the process: what a helper gave outlives the scan that asked."""
    return _configs.setdefault((path, timeout), DockerConfig(path, timeout=timeout))


@dataclass(frozen=True, slots=True)
class CredentialSource:
    """Where one host's credentials come from when the settings name none."""

    config: DockerConfig
    host: str

    async def get(self) -> Credential | None:
        return await self.config.get(self.host)

    def forget(self) -> None:
        self.config.forget(self.host)


class CredentialedOciClient(OciClient):
    """An OCI client whose credentials may come from a :class:`CredentialSource`: loaded
    before a request, asked for again once when the registry answers 401."""

    def __init__(self, *args: Any, source: CredentialSource | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source = source

    async def load_credentials(self) -> Credential | None:
        if self.source is None:
            return None
        found = await self.source.get()
        self.username, self.password = (found.username, found.secret) if found else (None, None)
        return found

    async def _request(self, method: str, url: str, repository: str, **kwargs: Any) -> Any:
        if self.source is None:
            return await super()._request(method, url, repository, **kwargs)
        await self.load_credentials()
        try:
            return await super()._request(method, url, repository, **kwargs)
        except AuthenticationFailed as exc:
            if exc.status != 401:
                raise
            log.info("%s refused the credentials from %s; asking again",
                     self.source.host, self.source.config.path)  # fmt: skip
            self.source.forget()
            await self.load_credentials()
            return await super()._request(method, url, repository, **kwargs)
