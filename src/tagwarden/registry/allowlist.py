"""Which registry hosts tagwarden may talk to, and which redirects it may follow.

An image's ``registry`` field names the host the server will send requests to. Left open, anyone
who may add an image could point the server at an internal address and read the answer back in
``last_error``. So images may only name an allowed host, and every redirect hop is checked
against :func:`hop_refusal` before it is followed.

No function here resolves a name: a name is judged by what it literally is, so the checks are
the same offline and in tests, and cannot be raced by DNS answers that change between our check
and the connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

from tagwarden.config import Settings
from tagwarden.references import DOCKER_HUB_HOSTS

SETTING = "TAGWARDEN_ALLOWED_REGISTRIES"
BUILT_IN_HOSTS = DOCKER_HUB_HOSTS | {"ghcr.io", "quay.io"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_host(host: str) -> str:
    """``host[:port]`` lower-cased, without a trailing dot or the default HTTPS port (an
    unconfigured host is reached over HTTPS, so ``ghcr.io:443`` is ``ghcr.io``)."""
    host = host.strip().lower()
    host = host.removesuffix(":443")
    return host.removesuffix(".")


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """Registry hosts an image may name: the built-in ones, the hosts configured in
    TAGWARDEN_REGISTRIES and those listed in TAGWARDEN_ALLOWED_REGISTRIES."""
    return frozenset(
        normalise_host(h)
        for h in (*BUILT_IN_HOSTS, *settings.registries, *settings.allowed_registries)
    )


def is_allowed(registry_host: str, settings: Settings) -> bool:
    return normalise_host(registry_host) in allowed_hosts(settings)


def refusal(registry_host: str) -> str:
    """Why an image on this host is refused, naming the setting that would allow it."""
    shown = registry_host if len(registry_host) <= 100 else registry_host[:100] + "…"
    return (
        f"registry {shown!r} is not an allowed registry host; allowed are docker.io, ghcr.io, "
        f"quay.io, the hosts in TAGWARDEN_REGISTRIES and those listed in {SETTING}"
    )


def trusted_netlocs(settings: Settings) -> frozenset[str]:
    """``host[:port]`` an operator configured: the only internal addresses requests may go to.

    The registry names (TAGWARDEN_REGISTRIES keys, TAGWARDEN_ALLOWED_REGISTRIES) and where the
    configuration says they answer (their URLs, the Docker Hub API and registry URLs).
    """
    urls = [c.url for c in settings.registries.values()]
    urls += [c.api_url for c in settings.registries.values() if c.api_url]
    urls += [settings.dockerhub_api_url, settings.dockerhub_registry_url]
    return frozenset(
        {normalise_host(h) for h in (*settings.registries, *settings.allowed_registries)}
        | {netloc(url) for url in urls}
    )


def netloc(url: str) -> str:
    """``host[:port]`` of a URL, lower-case, the port left out when it is the scheme's default."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets, as host[:port] writes it
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in: what "the same host" means."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").rstrip(".").lower(), port or _DEFAULT_PORTS.get(scheme)


def is_internal(host: str) -> bool:
    """Whether a host (no port) names a loopback, private, link-local or otherwise non-public
    address, judged without DNS: IP literals by their address (including the short and numeric
    forms a resolver accepts, ``127.1``, ``2130706433``), names only if they are ``localhost``
    or under ``.localhost``."""
    host = host.strip().lower().rstrip(".").strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        try:
            # inet_aton parses the legacy forms getaddrinfo would honour; it never looks up.
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return False  # a name: judged by the allow-list, not here
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global


def hop_refusal(source: str, target: str, trusted: Collection[str]) -> str | None:
    """Why a redirect (or a token realm) from ``source`` to ``target`` must not be followed, or
    None when it may be: a short reason tagwarden wrote, which never quotes the target.

    Allowed: the same scheme, host and port; another host over HTTPS; another configured host
    (``trusted``) over the same scheme. Never HTTPS to HTTP, never to an internal address that
    is not itself configured.
    """
    src, dst = origin(source), origin(target)
    if dst[0] not in _DEFAULT_PORTS or not dst[1]:
        return "not an http(s) URL"
    if src[0] == "https" and dst[0] == "http":
        return "an HTTPS to HTTP downgrade"
    if src == dst:
        return None
    configured = netloc(target) in trusted
    if is_internal(dst[1]) and not configured:
        return "an internal address that is not configured"
    if dst[0] != "https" and not configured:
        return "another host over plain HTTP"
    return None
