"""Which registry hosts are allowed, and which redirect hops may be followed.

Pure checks, and the transport following redirects through an httpx MockTransport: nothing here
opens a connection or looks a name up.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tagwarden.config import RegistryCredentials, Settings
from tagwarden.registry import RegistryError, RegistryState, Transport
from tagwarden.registry.allowlist import (
    SETTING,
    allowed_hosts,
    hop_refusal,
    is_allowed,
    is_internal,
    refusal,
    trusted_netlocs,
)
from tagwarden.registry.transport import MAX_REDIRECTS, unexpected
from tests.factories import make_settings

# -- the allow-list ----------------------------------------------------------------------------


def test_built_in_hosts_and_docker_hub_aliases_are_allowed() -> None:
    settings = Settings()
    for host in ("docker.io", "index.docker.io", "registry-1.docker.io", "ghcr.io", "quay.io"):
        assert is_allowed(host, settings), host
    assert is_allowed("GHCR.io", settings)
    assert is_allowed("ghcr.io:443", settings)
    assert not is_allowed("ghcr.io:8443", settings)
    assert not is_allowed("127.0.0.1:5000", settings)
    assert not is_allowed("registry.internal", settings)


def test_configured_and_listed_hosts_are_allowed() -> None:
    settings = make_settings(
        registries={"127.0.0.1:5000": RegistryCredentials(url="http://127.0.0.1:5000")},
        allowed_registries=["Registry.Example:5443"],
    )
    assert is_allowed("127.0.0.1:5000", settings)
    assert is_allowed("registry.example:5443", settings)
    assert not is_allowed("registry.example", settings)  # host[:port], the port included
    assert not is_allowed("127.0.0.1:5001", settings)
    assert "127.0.0.1:5000" in allowed_hosts(settings)


def test_the_refusal_names_the_setting() -> None:
    assert SETTING == "TAGWARDEN_ALLOWED_REGISTRIES"
    assert SETTING in refusal("127.0.0.1:5000")
    assert len(refusal("a" * 1000)) < 400


def test_trusted_netlocs_are_the_configured_names_and_urls() -> None:
    settings = make_settings(
        dockerhub_api_url="http://127.0.0.1:4010",
        dockerhub_registry_url="http://127.0.0.1:4011",
        registries={"ghcr.io": RegistryCredentials(url="http://127.0.0.1:5000/")},
        allowed_registries=["10.0.0.5:5000"],
    )
    assert trusted_netlocs(settings) == {
        "ghcr.io",
        "127.0.0.1:5000",
        "127.0.0.1:4010",
        "127.0.0.1:4011",
        "10.0.0.5:5000",
    }
    # By default Docker Hub's registry is trusted like its Hub API (neither is internal).
    assert {"hub.docker.com", "registry-1.docker.io"} <= trusted_netlocs(Settings())


# -- internal addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",  # short forms a resolver accepts
        "2130706433",
        "0x7f000001",
        "0.0.0.0",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata: link-local
        "100.64.0.1",  # shared address space
        "[::1]",
        "::1",
        "[fe80::1]",
        "[fc00::1]",
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "localhost",
        "LOCALHOST.",
        "registry.localhost",
    ],
)
def test_internal_addresses(host: str) -> None:
    assert is_internal(host)


@pytest.mark.parametrize("host", ["8.8.8.8", "[2606:4700::1111]", "ghcr.io", "localhost.example"])
def test_public_addresses_and_names(host: str) -> None:
    assert not is_internal(host)


# -- one hop -----------------------------------------------------------------------------------


def test_the_same_host_and_port_is_followed() -> None:
    assert hop_refusal("http://127.0.0.1:5000/v2/x", "http://127.0.0.1:5000/v2/y", ()) is None
    assert hop_refusal("https://ghcr.io/v2/x", "https://GHCR.io:443/v2/y", ()) is None


def test_another_host_over_https_is_followed() -> None:
    # A blob or token host: Docker Hub's CDN.
    assert hop_refusal("https://registry-1.docker.io/v2/", "https://cdn.example/blob", ()) is None


def test_https_to_http_is_never_followed() -> None:
    assert "downgrade" in (hop_refusal("https://ghcr.io/v2/", "http://ghcr.io/v2/", ()) or "")
    assert hop_refusal("https://ghcr.io/", "http://cdn.example/", ()) is not None
    # Not even to a configured host.
    trusted = {"127.0.0.1:5000"}
    assert hop_refusal("https://ghcr.io/", "http://127.0.0.1:5000/", trusted) is not None


def test_another_host_over_plain_http_is_not_followed() -> None:
    assert "plain HTTP" in (hop_refusal("http://ghcr.example/", "http://cdn.example/", ()) or "")


@pytest.mark.parametrize(
    "target",
    [
        "https://127.0.0.1/latest",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]:8443/",
        "https://10.0.0.1/",
        "https://localhost/",
        "https://2130706433/",
        "http://127.0.0.1:5001/",
    ],
)
def test_internal_addresses_are_not_followed_unless_configured(target: str) -> None:
    refused = hop_refusal("https://ghcr.io/v2/", target, ()) or hop_refusal(
        "http://127.0.0.1:5000/v2/", target, ()
    )
    assert refused is not None


def test_a_configured_internal_host_may_be_followed() -> None:
    trusted = {"127.0.0.1:5001"}
    assert hop_refusal("http://127.0.0.1:5000/", "http://127.0.0.1:5001/x", trusted) is None
    # Only that exact host and port.
    assert hop_refusal("http://127.0.0.1:5000/", "http://127.0.0.1:5002/x", trusted) is not None


@pytest.mark.parametrize("target", ["file:///etc/passwd", "gopher://127.0.0.1:6379/", "ftp://x/"])
def test_only_http_urls(target: str) -> None:
    assert hop_refusal("https://ghcr.io/", target, ()) is not None


def test_a_refusal_never_quotes_the_target() -> None:
    reason = hop_refusal("https://ghcr.io/", "http://127.0.0.1/SECRET-PATH", ())
    assert reason is not None
    assert "SECRET" not in reason
    assert "127.0.0.1" not in reason


# -- the transport follows, hop by hop ---------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def transport(handler: Handler, *, trusted: set[str] | None = None) -> Transport:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Transport(http, RegistryState(), max_retries=0, timeout=5.0, trusted=trusted or set())


def moved(location: str, status: int = 302) -> httpx.Response:
    return httpx.Response(status, headers={"Location": location}, text="moved")


async def test_a_refused_hop_sends_nothing_to_its_target() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.port == 5000:
            return moved("http://127.0.0.1:5001/internal")
        return httpx.Response(200, text="SECRET")

    with pytest.raises(RegistryError) as caught:
        await transport(handler).send("GET", "http://127.0.0.1:5000/v2/")
    assert [r.url.port for r in seen] == [5000]
    assert "redirect not followed" in str(caught.value)
    assert "SECRET" not in str(caught.value)
    assert caught.value.status == 302


async def test_every_hop_is_checked_not_only_the_first() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path == "/v2/a":
            return moved("/v2/b")  # same host: followed
        if request.url.path == "/v2/b":
            return moved("http://127.0.0.1:6000/metadata")  # another, internal: not
        return httpx.Response(200)

    with pytest.raises(RegistryError, match="redirect not followed"):
        await transport(handler).send("GET", "http://127.0.0.1:5000/v2/a")
    assert seen == ["http://127.0.0.1:5000/v2/a", "http://127.0.0.1:5000/v2/b"]


async def test_a_configured_host_is_followed_without_the_authorization_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.port == 5000:
            return moved("http://127.0.0.1:5001/blob", 307)
        return httpx.Response(200, json={"ok": True})

    response = await transport(handler, trusted={"127.0.0.1:5001"}).send(
        "GET", "http://127.0.0.1:5000/v2/x", headers={"Authorization": "Basic c2VjcmV0"}
    )
    assert response.status_code == 200
    assert [r.url.port for r in seen] == [5000, 5001]
    assert seen[0].headers.get("authorization") == "Basic c2VjcmV0"
    assert "authorization" not in seen[1].headers


async def test_the_same_host_keeps_the_authorization_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v2/old":
            return moved("/v2/new", 301)
        return httpx.Response(200)

    await transport(handler).send(
        "GET", "http://127.0.0.1:5000/v2/old", headers={"Authorization": "Bearer t"}
    )
    assert [r.headers.get("authorization") for r in seen] == ["Bearer t", "Bearer t"]


async def test_redirects_are_bounded() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return moved(f"/hop{len(seen)}")

    with pytest.raises(RegistryError, match=f"more than {MAX_REDIRECTS} redirects"):
        await transport(handler).send("GET", "http://127.0.0.1:5000/v2/")
    assert len(seen) == MAX_REDIRECTS + 1


async def test_an_unexpected_status_carries_the_status_and_no_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(418, text="SECRET body", headers={"X": "y"})

    response = await transport(handler).send("GET", "http://127.0.0.1:5000/v2/?token=abc")
    error = unexpected(response)
    assert str(error) == "GET http://127.0.0.1:5000/v2/: 418 I'm a Teapot"


def test_an_error_names_a_url_without_its_credentials_or_query() -> None:
    from tagwarden.registry.transport import shown_url

    shown = shown_url("https://robot:s3cret@127.0.0.1:5000/v2/app/tags/list?n=100&last=x")
    assert shown == "https://127.0.0.1:5000/v2/app/tags/list"
    assert shown_url("http://[::1]:5000/v2/") == "http://[::1]:5000/v2/"
