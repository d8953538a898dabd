"""The unchanged poll answered before FastAPI's router: the fleet's hottest request.

An unchanged poll (``GET /api/v1/device/{uuid}/state`` with the ETag the device already has, a
key the device index knows) needs no database and no body. Through FastAPI it still paid for
routing, the request object, path parameter conversion and response building: about a third
of the server's time per poll (docs/scale.md). This pure ASGI layer answers exactly that case
itself, with the same headers the route sends, and hands everything else (a changed state, a
key the index does not know, a missing or wrong key, any other method or path) to the app
unchanged: the route stays the one place that says 200, 401, 403, 404 and 429, and stays
declared for the OpenAPI document.

It sits inside the app's other middleware (metrics, body limit, security headers), so what a
client sees and what the metrics count are the same either way. A valid key is never counted
by the failure throttle, so the fast path has nothing to count.
"""

from __future__ import annotations

from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from tagwarden.devices.auth import key_from_header
from tagwarden.devices.index import key_digest
from tagwarden.devices.service import unchanged_from_index
from tagwarden.errors import Unauthorized

_PREFIX = "/api/v1/device/"
_SUFFIX = "/state"


def poll_uuid(path: str) -> str | None:
    """The ``{uuid}`` of a poll's path, matched as the route's ``{uuid}`` (one non-empty
    segment); None for any other path."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    uuid = path[len(_PREFIX) : -len(_SUFFIX)]
    return uuid if uuid and "/" not in uuid else None


def _header(scope: Scope, name: bytes) -> str | None:
    # The first one, decoded as Starlette's Headers.get decodes it.
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class PollFastPath:
    """Answers the unchanged poll from the device index; passes every other request on."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        # Read per request: the app's parts are set on its state and tests may replace them.
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        uuid = None
        # A mounted app (root_path) is left to the router, which knows how to strip it.
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            uuid = poll_uuid(scope["path"])
        if uuid is None or not await self._unchanged(scope, uuid, send):
            await self.app(scope, receive, send)

    async def _unchanged(self, scope: Scope, uuid: str, send: Send) -> bool:
        """Send the 304 and note the device seen; False (nothing sent) when the route must
        answer."""
        try:
            key = key_from_header(_header(scope, b"authorization"))
        except Unauthorized:
            return False  # the route's 401, as it says it
        state = self.state
        settings = state.settings
        polled = unchanged_from_index(
            state.device_index,
            uuid,
            key_digest(key),
            _header(scope, b"if-none-match"),
            settings.device_poll_interval_seconds,
            settings.device_active_poll_interval_seconds,
        )
        if polled is None:
            return False
        state.device_presence.seen(polled.device_id)
        # The headers the route's Response(status_code=304, headers=...) sends, in its order.
        headers = [
            (b"etag", polled.etag.encode("latin-1")),
            (b"x-poll-interval", str(polled.poll_interval).encode("latin-1")),
        ]
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return True
