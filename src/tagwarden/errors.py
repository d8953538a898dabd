"""Domain exceptions, and the one place that turns them into HTTP responses."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class DomainError(Exception):
    """Base of the errors a use case raises on purpose; each maps to one status and code."""

    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code

    @property
    def headers(self) -> dict[str, str] | None:
        """Headers the answer carries beside its body (a challenge, when to retry)."""
        return None


class InvalidInput(DomainError):
    status_code = 422
    code = "invalid_input"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"

    @property
    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_input",
    429: "rate_limited",
}


class ErrorBody(BaseModel):
    """The body of every error response: 401, 403, 404, 409, 413, 422, 429 and 500 alike.

    Request validation errors have this shape too (``detail`` lists each field and what is
    wrong with it), not FastAPI's default list of error objects.
    """

    detail: str = Field(description="what went wrong, for a person to read")
    code: str = Field(description="a stable machine-readable reason, e.g. invalid_input")


# What each documented error status means, for the OpenAPI document (see tagwarden.openapi).
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "the body could not be read (not UTF-8, or cut short)",
    401: "missing or invalid credentials",
    403: "the credential's role does not allow this action",
    404: "a resource named in the path or the body does not exist",
    409: "the resource's current state does not allow this (e.g. a duplicate, already decided)",
    413: "the request body is larger than TAGWARDEN_MAX_BODY_BYTES",
    422: "the input is invalid (request validation, or a value the service refuses)",
    429: "too many failed credential checks from this address; retry after Retry-After seconds",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: each status documented with the ErrorBody model.

    Most statuses are derived for every route in tagwarden.openapi; routes add what only they
    can answer (a 409 for a conflict, a 404 for an id in the body) with this.
    """
    return {s: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[s]} for s in statuses}


def describe_validation(errors: Sequence[Mapping[str, Any]]) -> str:
    """Pydantic's errors as one line a person reads: ``field: what is wrong; …``."""
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts)


def error_body(detail: str, code: str) -> dict[str, Any]:
    return {"detail": detail, "code": code}


def is_unstorable_value(exc: BaseException) -> bool:
    """A value the database cannot hold: an id past the integer column, a NUL in text, NaN in
    JSON (PostgreSQL's SQLSTATE class 22, "data exception"), or an integer past SQLite's 64 bits.
    That is bad input, not a server fault."""
    if isinstance(exc, OverflowError):
        return True
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return isinstance(exc, DBAPIError) and isinstance(sqlstate, str) and sqlstate.startswith("22")


def failure_reason(
    exc: Exception, *, unexpected_code: str, invalid: tuple[str, str] | None = None
) -> tuple[str, str]:
    """(reason, code) an audit entry gives for a failure kept to one item (a rule, an
    auto-rollout): tagwarden's own words, never an unexpected error's text (it may quote SQL or
    a remote answer; the log has the traceback). ``invalid`` is (what, code) for a pydantic
    ValidationError, where the caller knows what did not validate."""
    if isinstance(exc, DomainError):
        return exc.detail, exc.code
    if invalid is not None and isinstance(exc, ValidationError):
        what, code = invalid
        return f"{what}: {describe_validation(exc.errors())}", code
    return f"unexpected error ({type(exc).__name__}); see the server log", unexpected_code


def install_error_handlers(app: FastAPI) -> None:
    async def domain(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        return JSONResponse(
            error_body(exc.detail, exc.code), status_code=exc.status_code, headers=exc.headers
        )

    async def http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(str(exc.detail), code), status_code=exc.status_code, headers=exc.headers
        )

    async def validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(
            error_body(describe_validation(exc.errors()), "invalid_input"), status_code=422
        )

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # The use case's transaction was rolled back on the way out (see deps._session).
        if is_unstorable_value(exc):
            return JSONResponse(
                error_body(
                    "a value in the request is out of range or cannot be stored "
                    "(an id too large, a NUL character, a non-finite number)",
                    "invalid_input",
                ),
                status_code=422,
            )
        log.error("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal server error", "internal_error"), status_code=500)

    app.add_exception_handler(DomainError, domain)
    app.add_exception_handler(DBAPIError, unexpected)
    app.add_exception_handler(OverflowError, unexpected)
    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(RequestValidationError, validation)
