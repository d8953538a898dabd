"""``WWW-Authenticate`` parsing and a cache of the tokens registries hand out."""

from __future__ import annotations

import asyncio
import base64
import re
import weakref
from dataclasses import dataclass, field

import httpx

_PARAM = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9_\-]*)(?=\s|,|$)\s*,?")
# Refresh a little before expiry so a token never dies between our check and the request.
_EXPIRY_MARGIN = 10.0


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower-case: "bearer" or "basic"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


def parse_challenges(headers: httpx.Headers) -> list[Challenge]:
    """Every challenge in every ``WWW-Authenticate`` header.

    Quay sends two on one line (``Basic realm="quay.io", Bearer realm=…``), so a plain split
    on commas would tear the second one apart.
    """
    text = ", ".join(headers.get_list("www-authenticate"))
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(text):
        param = _PARAM.match(text, pos)
        if param and challenges:
            value = param[2]
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            challenges[-1].params[param[1].lower()] = value
            pos = param.end()
            continue
        scheme = _SCHEME.match(text, pos)
        if scheme:
            challenges.append(Challenge(scheme[1].lower(), {}))
            pos = scheme.end()
            continue
        pos += 1  # a token68 or stray character: nothing we use
    return challenges


def basic_header(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass
class _Cached:
    value: str
    expires_at: float


class TokenCache:
    """Tokens by what they were issued for, plus how each registry last asked to be spoken to.

    Shared across clients: the monitor makes a client per scan, and signing in or fetching a
    token again for every scan would double the requests of an unchanged rescan.
    """

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], _Cached] = {}
        self._challenges: dict[str, Challenge] = {}
        # Per event loop: a lock that once waited is tied to its loop, and the process-wide
        # cache outlives loops (every test has its own).
        self._locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, ...], asyncio.Lock]
        ] = weakref.WeakKeyDictionary()

    def lock(self, key: tuple[str, ...]) -> asyncio.Lock:
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        return locks.setdefault(key, asyncio.Lock())

    def get(self, key: tuple[str, ...], now: float) -> str | None:
        cached = self._tokens.get(key)
        if cached is None or cached.expires_at - _EXPIRY_MARGIN <= now:
            return None
        return cached.value

    def put(self, key: tuple[str, ...], value: str, *, expires_at: float) -> None:
        self._tokens[key] = _Cached(value, expires_at)

    def drop(self, key: tuple[str, ...]) -> None:
        self._tokens.pop(key, None)

    def challenge_for(self, base_url: str) -> Challenge | None:
        return self._challenges.get(base_url)

    def remember_challenge(self, base_url: str, challenge: Challenge) -> None:
        self._challenges[base_url] = challenge
