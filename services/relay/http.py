"""The HTTP watch handler: ``POST /v1/watch/{type}`` as Consul's ``http`` handler calls it."""

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

import nats.errors
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from contracts.events import MAX_NAME_LENGTH
from services import bus
from services.auth import check_bearer, error_response
from services.relay.payloads import BadWatchPayload, decode_json, make_change, parse_index
from services.relay.publisher import Publisher


class BodyTooLarge(Exception):
    """The request body is larger than ``RELAY_MAX_BODY_BYTES``."""


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _name_from_payload(payload: Any, outer: str, field: str) -> str | None:
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        value = payload[0].get(outer) if outer else payload[0]
        if isinstance(value, dict):
            value = value.get(field)
        if isinstance(value, str):
            return value
    return None


BUSY_WAIT_SECONDS = 5.0
"""How long a watch request waits for a free slot before it is answered 503 (well inside
Consul's own 10 s handler timeout)."""


def watch_router(
    publisher: Callable[[], Publisher | None],
    token: SecretStr | None,
    max_body: int,
    max_concurrent: int,
    busy_wait: float = BUSY_WAIT_SECONDS,
) -> APIRouter:
    """Return the router of the HTTP watch handler."""
    router = APIRouter()
    slots = asyncio.Semaphore(max_concurrent)

    @router.post("/v1/watch/{watch_type}", status_code=202)
    async def watch_handler(
        watch_type: str,
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_consul_index: Annotated[str | None, Header()] = None,
        key: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
        service: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
        name: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
        dc: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
    ) -> JSONResponse:
        """Accept one Consul watch invocation and publish it as a change."""
        denied = check_bearer(authorization, token)
        if denied is not None:
            return denied
        try:
            await asyncio.wait_for(slots.acquire(), busy_wait)
        except TimeoutError:
            return error_response(503, "busy", "too many watch requests at once; retry later")
        try:
            return await _handle(
                watch_type, request, x_consul_index, key or name, service, dc, publisher
            )
        finally:
            slots.release()

    async def _handle(
        watch_type: str,
        request: Request,
        x_consul_index: str | None,
        key: str | None,
        service: str | None,
        dc: str | None,
        publisher: Callable[[], Publisher | None],
    ) -> JSONResponse:
        """Read, validate and publish one watch request (inside a slot)."""
        name = key
        try:
            raw = await read_body(request, max_body)
        except BodyTooLarge:
            return error_response(413, "body_too_large", f"the limit is {max_body} bytes")
        try:
            index = parse_index(x_consul_index)
            payload = decode_json(raw)
            if watch_type == "service" and not service:
                service = _name_from_payload(payload, "Service", "Service")
            if watch_type == "event" and not name:
                name = _name_from_payload(payload, "", "Name")
            change = make_change(
                watch_type,
                payload,
                index,
                "http",
                key=name,
                service=service,
                datacenter=dc,
            )
        except BadWatchPayload as exc:
            return error_response(400, "bad_watch_payload", str(exc))
        current = publisher()
        if current is None:
            return error_response(503, "nats_unavailable", "the relay is not connected to NATS yet")
        try:
            result = await current.publish(change)
        except bus.MessageTooLarge as exc:
            return error_response(413, "message_too_large", str(exc))
        except (bus.BusError, nats.errors.Error, TimeoutError):
            return error_response(
                503, "nats_unavailable", "the change could not be stored; retry later"
            )
        return JSONResponse(
            {
                "success": True,
                "watch_type": change.watch_type,
                "consul_index": change.consul_index,
                "duplicate": result.duplicate,
                "stream_seq": result.stream_seq,
            },
            status_code=202,
        )

    return router
