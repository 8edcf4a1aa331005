"""Minimal ASGI request/reply plumbing shared by the Consul routes and the control routes."""

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class Request:
    """An HTTP request with its body already read."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    server: int

    def has(self, name: str) -> bool:
        """Whether a query flag such as ``?stale`` is present (with or without a value)."""
        return name in self.query

    def json(self) -> Any:
        """The body decoded as JSON (``None`` when empty)."""
        if not self.body.strip():
            return None
        return json.loads(self.body)


@dataclass
class Reply:
    """An HTTP answer: status, body bytes and headers."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, send: Send) -> None:
        """Write the reply through an ASGI ``send``."""
        headers = [(k.lower().encode(), v.encode()) for k, v in self.headers]
        headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def json_reply(body: Any, *, status: int = 200, pretty: bool = False) -> Reply:
    """A JSON reply encoded like Go's ``json.Marshal`` (or ``MarshalIndent`` with ``?pretty``)."""
    if pretty:
        data = json.dumps(body, indent=4, ensure_ascii=False) + "\n"
    else:
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return Reply(status, data.encode(), [("Content-Type", "application/json")])


def text_reply(status: int, text: str) -> Reply:
    """A plain-text reply, as Consul answers errors."""
    return Reply(status, text.encode(), [("Content-Type", "text/plain; charset=utf-8")])


async def read_request(scope: Scope, receive: Receive, server: int) -> Request:
    """Read the whole body and decode path, query and headers of an ASGI HTTP scope."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    raw_query = scope.get("query_string", b"").decode("latin-1")
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    return Request(
        method=scope["method"],
        path=scope["path"],
        query=dict(parse_qsl(raw_query, keep_blank_values=True)),
        headers=headers,
        body=b"".join(chunks),
        server=server,
    )


async def wait_disconnect(receive: Receive) -> None:
    """Return once the client has gone away (the body must already be read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def sleep_unless_gone(seconds: float, disconnected: "asyncio.Future[None]") -> bool:
    """Sleep ``seconds``; returns ``False`` early when the client disconnects meanwhile."""
    try:
        await asyncio.wait_for(asyncio.shield(disconnected), timeout=seconds)
    except TimeoutError:
        return True
    return False


@dataclass(frozen=True)
class Pattern:
    """A route template such as ``/v1/catalog/service/{name}``; ``{x...}`` spans slashes."""

    template: str
    regex: re.Pattern[str]

    @classmethod
    def of(cls, template: str) -> "Pattern":
        """Compile a template into a full-match regular expression."""
        parts = re.split(r"(\{[a-z_]+(?:\.\.\.)?\})", template)
        regex = ""
        for part in parts:
            if part.startswith("{") and part.endswith("...}"):
                regex += f"(?P<{part[1:-4]}>.*)"
            elif part.startswith("{"):
                regex += f"(?P<{part[1:-1]}>[^/]*)"
            else:
                regex += re.escape(part)
        return cls(template.replace("...}", "}"), re.compile(regex))

    def match(self, path: str) -> dict[str, str] | None:
        """Path parameters when ``path`` matches, else ``None``."""
        found = self.regex.fullmatch(path)
        return None if found is None else found.groupdict()
