"""The API's documentation pages: Swagger UI at ``/docs`` and ReDoc at ``/redoc``, from local files.

Both run from files the package ships (``static/docs``, see ``scripts/vendor_api_docs.sh``) and
read the live OpenAPI document: no CDN, so they work offline and under a strict policy.
"""

from html import escape
from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.responses import HTMLResponse

from services.api.dashboard import StaticFile, load_static_files, serve_file
from services.auth import error_response

DOCS_DIR = "static/docs"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/static/docs"
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-init.js")
REDOC_FILES = ("redoc.standalone.js",)

SWAGGER_CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
"""Policy of ``/docs``: the API's own plus icons drawn from ``data:`` URLs. Scripts and styles
only from this origin: Swagger UI's start-up code is a file (``swagger-init.js``), not inline."""

REDOC_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "worker-src 'self' blob:; frame-ancestors 'none'"
)
"""Policy of ``/redoc``: scripts still only from this origin, but ReDoc writes its stylesheet
into the page at run time (inline styles) and runs its search index in a worker it makes from
a ``blob:`` URL; both are refused by the API's own policy."""


def _swagger_page(openapi_url: str, title: str) -> str:
    url = escape(openapi_url, quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)} · Swagger UI</title>
<link rel="icon" type="image/png" href="{ASSETS_URL}/swagger-favicon.png">
<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{url}"></div>
<script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_URL}/swagger-init.js"></script>
</body>
</html>
"""


def _redoc_page(openapi_url: str, title: str) -> str:
    url = escape(openapi_url, quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)} · ReDoc</title>
<link rel="icon" type="image/png" href="{ASSETS_URL}/swagger-favicon.png">
</head>
<body>
<redoc spec-url="{url}"></redoc>
<script src="{ASSETS_URL}/redoc.standalone.js"></script>
</body>
</html>
"""


def _page_headers(policy: str) -> dict[str, str]:
    return {"Content-Security-Policy": policy, "Cache-Control": "no-cache"}


def docs_router(openapi_url: str, title: str = "nodeview API") -> APIRouter:
    """Return the router of ``/docs``, ``/redoc`` and their files (read once, here)."""
    files: dict[str, StaticFile] = load_static_files(DOCS_DIR, SWAGGER_FILES + REDOC_FILES)
    swagger = _swagger_page(openapi_url, title)
    redoc = _redoc_page(openapi_url, title)
    router = APIRouter(include_in_schema=False)

    @router.api_route(DOCS_URL, methods=["GET", "HEAD"])
    async def swagger_ui() -> HTMLResponse:
        """Swagger UI on the API's OpenAPI document."""
        return HTMLResponse(swagger, headers=_page_headers(SWAGGER_CSP))

    @router.api_route(REDOC_URL, methods=["GET", "HEAD"])
    async def redoc_ui() -> HTMLResponse:
        """ReDoc on the API's OpenAPI document."""
        return HTMLResponse(redoc, headers=_page_headers(REDOC_CSP))

    @router.api_route(ASSETS_URL + "/{name}", methods=["GET", "HEAD"])
    async def docs_file(
        name: str, if_none_match: Annotated[str | None, Header()] = None
    ) -> Response:
        """One file of the documentation pages, by name; only files found at start."""
        file = files.get(name)
        if file is None:
            return error_response(404, "not_found", "no such documentation file")
        return serve_file(file, if_none_match)

    return router
