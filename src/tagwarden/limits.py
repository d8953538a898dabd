"""Request bodies are bounded before anything parses them.

A plain ASGI middleware in front of every route, the admin pages' forms and the webhooks:

* a ``Content-Length`` past ``max_body_bytes`` is answered 413 at once, without reading a byte
  (nor calling the app, so no route parses or authenticates anything first);
* a body without one (chunked) is counted as the app pulls it, and the first chunk past the
  limit ends the request with 413: the rest is never read, let alone buffered;
* a JSON body nested deeper than ``max_json_depth`` is a 422: Python's parsers recurse, and a
  deep enough document is a RecursionError (a 500) in the parser, in validation or in the
  database driver that stores it. Checking the raw bytes here covers every route and every JSON
  column the API writes (approval metadata, channel and rule configs, device reports) at once.

The body is read only when the app asks for it, so a route that refuses a caller before reading
(the webhooks) never reads it. Starlette's own RequestBodyLimitMiddleware answers text/plain
and lets the app run on a declared-too-large body; tagwarden answers ``{"detail", "code"}``.
"""

from __future__ import annotations

import re
from itertools import accumulate

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tagwarden.errors import error_body

MAX_JSON_DEPTH = 64
# Requests of these methods that announce no body carry none (a client may still stream a POST
# with no Content-Length through an ASGI transport, so only these are let through unwrapped).
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Bodies parsed as forms have no nesting; everything else may reach a JSON parser (FastAPI
# parses a body without a content type as JSON, the webhooks parse whatever they are sent).
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DELTA = [0] * 256
_DELTA[ord("[")] = _DELTA[ord("{")] = 1
_DELTA[ord("]")] = _DELTA[ord("}")] = -1


def json_depth(data: bytes) -> int:
    """How deeply the JSON document ``data`` nests arrays and objects, in linear time.

    Escapes go first (``\\x`` pairs, left to right, exactly as a parser pairs them), so every
    quote left delimits a string; strings go next, with the brackets inside them; the brackets
    left are the document's. No regular expression here can backtrack. For a document the JSON
    parser would refuse the answer may be off, which is harmless: the parser refuses it anyway.
    """
    if not data.strip(b" \t\r\n").startswith((b"[", b"{")):
        return 0
    brackets = _STRING.sub(b"", _ESCAPE.sub(b"", data)).translate(None, _NOT_BRACKETS)
    # Running depth after each bracket, its maximum: C loops only, ~30 ms for 1 MiB of them.
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


class _Refused(Exception):
    """Raised into the app from ``receive`` once its request has been answered here."""


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, max_json_depth: int = MAX_JSON_DEPTH
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    def _too_large(self) -> JSONResponse:
        return JSONResponse(
            error_body(
                f"the request body is larger than {self.max_body_bytes} bytes "
                "(TAGWARDEN_MAX_BODY_BYTES)",
                "body_too_large",
            ),
            status_code=413,
        )

    def _too_deep(self) -> JSONResponse:
        return JSONResponse(
            error_body(f"the JSON body nests deeper than {self.max_json_depth} levels", "too_deep"),
            status_code=422,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if (
            declared is None
            and "transfer-encoding" not in headers
            and scope.get("method") in _NO_BODY_METHODS
        ):
            # A read that announces no body (a device poll): nothing to count or wrap.
            await self.app(scope, receive, send)
            return
        if declared and declared.strip().isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large()(scope, receive, send)
            return
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        check_depth = content_type not in _FORM_TYPES

        refusal: JSONResponse | None = None
        app_started = False
        done = False  # the whole body has been handed to the app
        received = 0

        async def refuse(response: JSONResponse) -> None:
            nonlocal refusal
            refusal = response
            raise _Refused

        async def bounded_receive() -> Message:
            nonlocal done, received
            if done or refusal is not None:
                return await receive()  # after the body: only http.disconnect is left
            if not check_depth:  # forms: pass each chunk on as it comes, counted
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        await refuse(self._too_large())
                    done = not message.get("more_body", False)
                return message
            # JSON (or anything a route may parse as JSON): read the whole body, bounded, so
            # its depth can be checked before the app sees a byte of it.
            chunks: list[bytes] = []
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return message  # the client went away
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > self.max_body_bytes:
                    await refuse(self._too_large())
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            done = True
            body = b"".join(chunks)
            if json_depth(body) > self.max_json_depth:
                await refuse(self._too_deep())
            return {"type": "http.request", "body": body, "more_body": False}

        async def guarded_send(message: Message) -> None:
            nonlocal app_started
            if refusal is not None and not app_started:
                return  # the app's answer to the refused body (a 400, say) is not sent
            if message["type"] == "http.response.start":
                app_started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except Exception:
            # FastAPI turns a failed body read into its own 400, which guarded_send dropped;
            # a route reading the body itself lets _Refused (or what it became) rise to here.
            if refusal is None or app_started:
                raise
        if refusal is not None and not app_started:
            await refusal(scope, receive, send)
