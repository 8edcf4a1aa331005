"""One error body for every 4xx/5xx of the API, FastAPI's and Starlette's own answers included."""

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.views import ErrorResponse
from services.api.middleware import SECURITY_HEADERS
from services.auth import error_response

MAX_DETAIL_LENGTH = 1000
"""Longest ``detail`` of a generated error: request input is echoed, so it is bounded."""

MAX_VALIDATION_ERRORS = 5
"""Problems of one invalid request named in its ``detail``; the rest are counted."""

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request",
    401: "No bearer token",
    403: "Wrong bearer token",
    404: "Unknown node or path",
    405: "Method not allowed on this path",
    413: "Request body over API_MAX_BODY_BYTES",
    422: "Invalid parameter (query, path or header)",
    429: "Too many event streams for this client",
    500: "The server failed to answer",
    503: "Not ready (the view is still being replayed), or NATS unavailable",
    504: "The resync did not finish within API_FLUSH_WAIT_TIMEOUT",
}
"""What each error status means on this API, as the OpenAPI document says it."""


def error_code(status: int) -> str:
    """The ``error`` of a status no route named: its reason phrase in snake case."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return f"http_{status}"
    return phrase.lower().replace(" ", "_").replace("-", "_").replace("'", "")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring nodeview's error body for ``statuses``."""
    return {
        status: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_LENGTH else text[: MAX_DETAIL_LENGTH - 1] + "…"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's and FastAPI's own HTTP errors (unknown path, wrong method, …)."""
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
        detail = f"no such path: {request.url.path}"
    elif exc.status_code == 405 and detail == HTTPStatus.METHOD_NOT_ALLOWED.phrase:
        detail = f"{request.method} is not allowed on {request.url.path}"
    response = error_response(
        exc.status_code, error_code(exc.status_code), _bounded(detail) if detail else None
    )
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """A request whose parameters do not validate: 422 naming each problem and where."""
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
        for error in exc.errors()
    ]
    shown = "; ".join(problems[:MAX_VALIDATION_ERRORS])
    if len(problems) > MAX_VALIDATION_ERRORS:
        shown += f"; and {len(problems) - MAX_VALIDATION_ERRORS} more"
    return error_response(422, "invalid_request", _bounded(shown))


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    """An unhandled failure: 500 with no internals (the server logs the traceback)."""
    response = error_response(500, "internal_error", "the server failed to answer; see its log")
    # Answered outside the API middleware: its security headers are added here.
    for name, value in SECURITY_HEADERS:
        response.headers[name.decode()] = value.decode()
    return response


def add_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` answer ``{success: false, error, detail}``."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _server_error)
