"""Bearer-token checks of the endpoints that change state or inject events."""

import hmac

from fastapi.responses import JSONResponse
from pydantic import SecretStr


def error_response(status: int, error: str, detail: str | None = None) -> JSONResponse:
    """Return nodeview's JSON error body with ``status``."""
    return JSONResponse({"success": False, "error": error, "detail": detail}, status_code=status)


def check_bearer(authorization: str | None, token: SecretStr | None) -> JSONResponse | None:
    """Return an error answer unless ``authorization`` carries ``token`` (constant-time check)."""
    if token is None:
        return error_response(503, "token_not_configured", "the server has no token configured")
    if not authorization or not authorization.startswith("Bearer "):
        return error_response(401, "missing_token", "send Authorization: Bearer <token>")
    given = authorization.removeprefix("Bearer ").strip().encode()
    if not hmac.compare_digest(given, token.get_secret_value().encode()):
        return error_response(403, "invalid_token")
    return None
