"""Registry credentials: answering a registry's challenge with Basic credentials or a Bearer
token from its token endpoint, each token fetched once and kept until it expires."""

from __future__ import annotations

from urllib.parse import urljoin

from tagwarden.registry.allowlist import hop_refusal
from tagwarden.registry.auth import Challenge, basic_header
from tagwarden.registry.base import AuthenticationFailed, MalformedResponse
from tagwarden.registry.transport import Transport, json_object, unexpected
from tagwarden.remote import reason

IDENTITY_TOKEN_USER = "<token>"  # noqa: S105 - docker's marker for an identity token
# Token endpoints may omit expires_in; the token spec says to assume 60 seconds then.
DEFAULT_TOKEN_SECONDS = 60.0


async def authorization(
    transport: Transport, base_url: str, scope: str, username: str | None, password: str | None
) -> str | None:
    """The Authorization header for ``scope``: Basic, or a Bearer token fetched once and kept
    until it expires; None before the registry has asked for anything."""
    challenge = transport.state.tokens.challenge_for(base_url)
    if challenge is None:
        return None  # nothing asked for yet: try anonymously, as public registries allow
    if challenge.scheme == "basic":
        if not (username and password) or username == IDENTITY_TOKEN_USER:
            raise AuthenticationFailed(f"{base_url} wants Basic credentials; none are configured")
        return basic_header(username, password)
    state = transport.state
    token_key = key(challenge, scope, username)
    # One fetch per token even when many HEADs find it missing at once.
    async with state.tokens.lock(token_key):
        token = state.tokens.get(token_key, state.clock.now())
        if token is None:
            token, expires_at = await _fetch(
                transport, base_url, challenge, scope, username, password
            )
            state.tokens.put(token_key, token, expires_at=expires_at)
    return f"Bearer {token}"


def key(challenge: Challenge, scope: str, username: str | None) -> tuple[str, ...]:
    """Tokens are kept per realm, service, scope and user."""
    return (
        challenge.realm or "",
        challenge.params.get("service", ""),
        scope,
        username or "",
    )


async def _fetch(
    transport: Transport,
    base_url: str,
    challenge: Challenge,
    scope: str,
    username: str | None,
    password: str | None,
) -> tuple[str, float]:
    if not challenge.realm:
        raise AuthenticationFailed(f"{base_url}: Bearer challenge without a realm")
    realm = urljoin(base_url + "/", challenge.realm)
    # The realm is the registry's word: it must pass the rules a redirect would, or the
    # credentials below would go wherever a hostile registry asks.
    refused = hop_refusal(base_url, realm, transport.trusted)
    if refused is not None:
        raise AuthenticationFailed(f"{base_url}: token realm refused ({refused})")
    params = {"scope": scope}
    if "service" in challenge.params:
        params["service"] = challenge.params["service"]
    if username == IDENTITY_TOKEN_USER and password:
        # An identity token (docker's "<token>" user) is an OAuth2 refresh token: the token
        # endpoint takes it in a form POST, never as Basic credentials (distribution's
        # docs/spec/auth/oauth.md), which is how ACR's and others' logins work.
        form = {**params, "grant_type": "refresh_token", "refresh_token": password}
        response = await transport.send("POST", realm, form=form | {"client_id": "tagwarden"})
    else:
        headers = {}
        if username and password:
            headers["Authorization"] = basic_header(username, password)
        response = await transport.send("GET", realm, params=params, headers=headers)
    if response.status_code in (401, 403):
        raise AuthenticationFailed(
            f"{base_url}: the token endpoint refused: {reason(response.status_code)}",
            url=realm,
            status=response.status_code,
        )
    if response.status_code != 200:
        raise unexpected(response)
    body = json_object(response)
    # Docker Hub once sent only "token", others only "access_token": accept either.
    token = body.get("token") or body.get("access_token")
    if not isinstance(token, str) or not token:
        raise MalformedResponse(f"{base_url}: no token from the token endpoint", url=realm)
    lifetime = body.get("expires_in")
    seconds = float(lifetime) if isinstance(lifetime, int | float) else DEFAULT_TOKEN_SECONDS
    return token, transport.state.clock.now() + seconds


def preferred(challenges: list[Challenge]) -> Challenge | None:
    # Quay offers Basic and Bearer together; the token flow is the one that scopes access.
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None
