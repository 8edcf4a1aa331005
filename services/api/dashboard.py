"""Serves the live node dashboard: the page at ``/`` and its files under ``/static/``."""

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Header, Response

from services.api.negotiation import etag_matches
from services.auth import error_response

STATIC_PACKAGE = "services.api"
STATIC_DIR = "static"
INDEX = "index.html"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
"""The only kinds of file served; anything else in the folder is ignored."""

CACHE_CONTROL = "no-cache"
"""File names carry no version, so browsers keep a copy but revalidate it (ETag → 304)."""


@dataclass(frozen=True)
class StaticFile:
    """One file of the dashboard, read once, with its content type and ETag."""

    content: bytes
    content_type: str
    etag: str


def load_static_files(
    folder_name: str = STATIC_DIR, required: tuple[str, ...] = (INDEX,)
) -> dict[str, StaticFile]:
    """Read every servable file of a folder of the package (``static``) into memory."""
    files: dict[str, StaticFile] = {}
    folder = resources.files(STATIC_PACKAGE).joinpath(folder_name)
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2] if "." in entry.name else ""
        content_type = CONTENT_TYPES.get(suffix)
        if content_type is None or not entry.is_file():
            continue
        content = entry.read_bytes()
        etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
        files[entry.name] = StaticFile(content, content_type, etag)
    missing = [name for name in required if name not in files]
    if missing:
        raise FileNotFoundError(f"{STATIC_PACKAGE}/{folder_name}: {', '.join(missing)} missing")
    return files


def serve_file(file: StaticFile, if_none_match: str | None) -> Response:
    """Answer one file, or 304 when ``If-None-Match`` holds its ETag."""
    headers = {"ETag": file.etag, "Cache-Control": CACHE_CONTROL}
    if if_none_match is not None and etag_matches(file.etag, if_none_match):
        return Response(status_code=304, headers=headers)
    return Response(file.content, media_type=file.content_type, headers=headers)


def dashboard_router() -> APIRouter:
    """Return the router of the dashboard page and its static files (read once, here)."""
    files = load_static_files()
    router = APIRouter(include_in_schema=False)

    @router.api_route("/", methods=["GET", "HEAD"])
    async def index(if_none_match: Annotated[str | None, Header()] = None) -> Response:
        """The dashboard page."""
        return serve_file(files[INDEX], if_none_match)

    @router.api_route("/static/{name}", methods=["GET", "HEAD"])
    async def static_file(
        name: str, if_none_match: Annotated[str | None, Header()] = None
    ) -> Response:
        """One file of the dashboard, by name; only files found at start are served."""
        file = files.get(name)
        if file is None:
            return error_response(404, "not_found", "no such dashboard file")
        return serve_file(file, if_none_match)

    return router
