"""What tagwarden says when a remote server (a registry, a notification receiver) fails it.

Always tagwarden's own words: a status and its standard phrase, or a short description of what
went wrong. Never the remote body, nor the remote reason phrase or an exception's text that may
quote it: errors land in ``last_error`` fields and API answers that people read, and a server
that redirects to an internal URL, or a receiver's error page, must not get shown there.
"""

from __future__ import annotations

from http import HTTPStatus

import httpx


def reason(status: int) -> str:
    """``404 Not Found``: the status and its standard phrase, from our own table."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def transport_failure(exc: httpx.HTTPError) -> str:
    """A request that got no answer, e.g. ``could not connect (ConnectError)``.

    The exception's text is left out: an HTTP parser's error may quote what the server sent,
    and a URL's text its password. The type says enough; the log has the rest.
    """
    if isinstance(exc, httpx.TimeoutException):
        what = "timed out"
    elif isinstance(exc, httpx.ConnectError):
        what = "could not connect"
    elif isinstance(exc, httpx.RemoteProtocolError):
        what = "the server broke the HTTP protocol"
    else:
        what = "the request failed"
    return f"{what} ({type(exc).__name__})"
