"""The client's SSE parsing and event decoding, and what the client package may import."""

import ast
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from nodeview_client.events import (
    MetaChanged,
    NodeDeleted,
    RawEvent,
    SseParser,
    decode,
    raw_events,
)

CLIENT_DIR = Path(__file__).resolve().parents[2] / "nodeview_client"
ALLOWED_ROOTS = {"contracts", "nodeview_client", "httpx", "pydantic"}


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_the_parser_joins_data_lines_skips_comments_and_reads_retry() -> None:
    """Multi-line data joins with newlines; comments are skipped; ``retry`` is remembered."""
    parser = SseParser()
    stream = _lines(
        "retry: 2000",
        "event: meta",
        'data: {"generation":',
        "data: 7}",
        "",
        ": keepalive",
        "",
        "data: plain\r",
        "",
    )
    events = [event async for event in raw_events(stream, parser)]
    assert events == [
        RawEvent("meta", '{"generation":\n7}'),
        RawEvent("message", "plain"),
    ]
    assert parser.retry_ms == 2000


def test_known_events_decode_to_types_and_unknown_ones_are_skipped() -> None:
    """meta and node_deleted become typed events; an unknown name is None; bad data raises."""
    assert decode(RawEvent("meta", '{"generation": 3}')) == MetaChanged(3)
    deleted = decode(RawEvent("node_deleted", '{"node": "a", "addr": "10.0.0.1"}'))
    assert deleted == NodeDeleted("a", "10.0.0.1")
    assert decode(RawEvent("something_new", "{}")) is None
    with pytest.raises(ValidationError):
        decode(RawEvent("snapshot", '{"success": true}'))


def test_the_client_package_imports_only_contracts_httpx_and_the_standard_library() -> None:
    """nodeview_client never imports services/ or devstack/: API users need neither."""
    for path in CLIENT_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            for root in roots:
                assert root in ALLOWED_ROOTS or root in sys.stdlib_module_names, (path, root)
