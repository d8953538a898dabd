"""Security headers on every response: the admin pages load only the server's own
scripts, styles and images, are never framed, and never tell another site where they were."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No inline scripts, styles or event handlers anywhere in the templates (app.js and app.css do
# it all), so nothing needs 'unsafe-inline'. data: images: the browser's own form controls.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
_CSP = (b"content-security-policy", CONTENT_SECURITY_POLICY.encode())


class SecurityHeaders:
    """Pure ASGI (no body buffering, streaming responses pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.docs: frozenset[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # FastAPI's interactive API docs load their assets from a CDN with an inline script;
        # they get the other headers but not the pages' policy.
        if self.docs is None:  # the app's docs paths, read once (the app is set up by now)
            app = scope.get("app")
            names = ("docs_url", "redoc_url", "swagger_ui_oauth2_redirect_url")
            self.docs = frozenset(p for n in names if (p := getattr(app, n, None)))
        with_csp = scope.get("path") not in self.docs

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [*HEADERS, _CSP] if with_csp else HEADERS
                headers.extend(h for h in extra if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
