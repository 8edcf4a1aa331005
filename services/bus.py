"""NATS adapter shared by the services: connection, JetStream objects, change and KV publishing."""

import asyncio
import gzip
import logging
import ssl
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BucketNotFoundError, NotFoundError

from contracts import subjects
from contracts.events import ConsulChange, ConsulDelta, ResyncRequested
from services.config import NatsSettings, read_secret

log = logging.getLogger("nodeview.bus")

COMPRESS_ABOVE_BYTES = 64 * 1024
"""Change messages larger than this are gzip-compressed (``Content-Encoding: gzip``)."""

DUPLICATE_WINDOW_SECONDS = 120.0
"""JetStream duplicate window: one change delivered by several sources is stored once."""

DEAD_LETTER_MAX_AGE_SECONDS = 7 * 24 * 3600.0

CONNECT_RETRY_SECONDS = 1.0
"""Pause between attempts to reach NATS (and check the streams) at start."""

DEAD_LETTER_MAX_BYTES = 64 * 1024**2
"""Size bound of the dead-letter stream (the oldest go first)."""


class BusError(Exception):
    """A NATS or JetStream operation failed."""


class MessageTooLarge(BusError):
    """A message does not fit in the server's ``max_payload``, even compressed."""


def redact_url(url: str) -> str:
    """Drop ``user:password@`` from URLs (comma-separated too) before they are shown."""
    # The last "@" ends the userinfo: a password may hold "@" itself.
    return ",".join(
        part.split("://", 1)[0] + "://" + part.rpartition("@")[2]
        if "@" in part and "://" in part
        else part
        for part in url.split(",")
    )


def _tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    if settings.nats_tls_ca_file is None and settings.nats_tls_cert_file is None:
        return None
    context = ssl.create_default_context(
        cafile=str(settings.nats_tls_ca_file) if settings.nats_tls_ca_file else None
    )
    if settings.nats_tls_cert_file is not None and settings.nats_tls_key_file is not None:
        context.load_cert_chain(str(settings.nats_tls_cert_file), str(settings.nats_tls_key_file))
    return context


def connect_options(settings: NatsSettings, name: str) -> dict[str, Any]:
    """Return ``nats.connect`` keyword arguments for the configured URL, auth and TLS."""
    options: dict[str, Any] = {
        "servers": [s.strip() for s in settings.nats_url.split(",") if s.strip()],
        "name": name,
        "connect_timeout": settings.nats_connect_timeout,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1.0,
        "allow_reconnect": True,
    }
    password = read_secret(settings.nats_password, settings.nats_password_file, "NATS_PASSWORD")
    if settings.nats_user:
        options["user"] = settings.nats_user
        options["password"] = password.get_secret_value() if password else ""
    token = read_secret(settings.nats_token, settings.nats_token_file, "NATS_TOKEN")
    if token is not None:
        options["token"] = token.get_secret_value()
    if settings.nats_creds_file is not None:
        options["user_credentials"] = str(settings.nats_creds_file)
    if settings.nats_nkey_seed_file is not None:
        options["nkeys_seed"] = str(settings.nats_nkey_seed_file)
    tls = _tls_context(settings)
    if tls is not None:
        options["tls"] = tls
    return options


async def connect(
    settings: NatsSettings,
    name: str,
    *,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
    reconnect: bool = True,
) -> Client:
    """Connect to NATS; reconnects forever, logging each disconnect and reconnect."""

    async def error_cb(exc: Exception) -> None:
        log.warning("nats error", extra={"event": "nats.error", "reason": str(exc)})

    async def disconnected_cb() -> None:
        log.warning("nats disconnected", extra={"event": "nats.disconnected"})

    async def reconnected_cb() -> None:
        log.info("nats reconnected", extra={"event": "nats.reconnected"})
        if on_reconnect is not None:
            await on_reconnect()

    try:
        options = connect_options(settings, name)
        if not reconnect:
            options.update(allow_reconnect=False, max_reconnect_attempts=0)
        return await nats.connect(
            **options,
            error_cb=error_cb,
            disconnected_cb=disconnected_cb,
            reconnected_cb=reconnected_cb,
        )
    except (OSError, nats.errors.Error) as exc:
        raise BusError(f"cannot connect to NATS at {redact_url(settings.nats_url)}: {exc}") from exc


async def connect_ready(
    settings: NatsSettings,
    name: str,
    *,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
) -> Client:
    """Connect and make sure the streams exist, trying again every second until NATS answers.

    Services call it in the background, so their health port answers meanwhile.
    """
    nc: Client | None = None
    while True:
        try:
            if nc is None:
                nc = await connect(settings, name, on_reconnect=on_reconnect)
            await ensure_streams(nc.jetstream(), settings)
        except (BusError, nats.errors.Error, OSError, TimeoutError) as exc:
            log.warning(
                "nats not ready; retrying",
                extra={"event": "nats.waiting", "client": name, "reason": str(exc)},
            )
            await asyncio.sleep(CONNECT_RETRY_SECONDS)
        else:
            return nc


async def ensure_streams(js: JetStreamContext, settings: NatsSettings) -> None:
    """Create or update the event stream, the dead-letter stream and the KV buckets."""
    replicas = settings.nats_stream_replicas
    configs = [
        js_api.StreamConfig(
            name=subjects.STREAM_EVENTS,
            subjects=list(subjects.STREAM_EVENTS_SUBJECTS),
            storage=js_api.StorageType.FILE,
            retention=js_api.RetentionPolicy.LIMITS,
            max_age=settings.nats_stream_max_age_seconds,
            max_bytes=settings.nats_stream_max_bytes,
            discard=js_api.DiscardPolicy.OLD,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            num_replicas=replicas,
        ),
        js_api.StreamConfig(
            name=subjects.STREAM_DEAD_LETTER,
            subjects=[subjects.SUBJECT_DEAD_LETTER],
            storage=js_api.StorageType.FILE,
            max_age=DEAD_LETTER_MAX_AGE_SECONDS,
            max_bytes=DEAD_LETTER_MAX_BYTES,
            discard=js_api.DiscardPolicy.OLD,
            num_replicas=replicas,
        ),
    ]
    for config in configs:
        try:
            info = await js.stream_info(config.name or "")
        except NotFoundError:
            await js.add_stream(config)
            continue
        # Subjects are only ever added: an older process (a script handler on some Consul
        # agent) must not take away subjects that newer ones publish on.
        config.subjects = sorted({*(info.config.subjects or ()), *(config.subjects or ())})
        await js.update_stream(config)
    await ensure_bucket(js, subjects.BUCKET_NODES, replicas=replicas)


async def ensure_bucket(
    js: JetStreamContext, bucket: str, *, replicas: int, ttl: float | None = None
) -> None:
    """Create a KV bucket (history 1, file storage), or align the TTL of an existing one."""
    try:
        await js.key_value(bucket)
        if ttl is not None:
            info = await js.stream_info(f"KV_{bucket}")
            if info.config.max_age != ttl:
                info.config.max_age = ttl
                await js.update_stream(info.config)
    except BucketNotFoundError:
        await js.create_key_value(
            js_api.KeyValueConfig(
                bucket=bucket,
                history=1,
                ttl=ttl,
                storage=js_api.StorageType.FILE,
                replicas=replicas,
            )
        )


def encode_change(change: ConsulChange | ConsulDelta) -> tuple[bytes, dict[str, str]]:
    """Serialise a change, compressing it when large; return body and extra headers."""
    body = change.model_dump_json().encode()
    if len(body) <= COMPRESS_ABOVE_BYTES:
        return body, {}
    return gzip.compress(body, compresslevel=1), {subjects.HEADER_CONTENT_ENCODING: "gzip"}


def decode_body(data: bytes, headers: Mapping[str, str] | None) -> bytes:
    """Undo ``encode_change``'s compression."""
    if headers and headers.get(subjects.HEADER_CONTENT_ENCODING) == "gzip":
        return gzip.decompress(data)
    return data


@dataclass(frozen=True)
class PublishResult:
    """What JetStream said of a publish."""

    stream_seq: int
    duplicate: bool


async def publish_change(
    nc: Client,
    js: JetStreamContext,
    change: ConsulChange,
    *,
    delta: ConsulDelta | None = None,
    digest: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> PublishResult:
    """Publish one Consul answer, whole or as its ``delta``; JetStream stores it once.

    Either way the message id names the answer (type, key, index) and carries its digest, so the
    same answer from a script handler (whole) and from the watcher (a delta) is stored once.
    """
    item: ConsulChange | ConsulDelta = delta if delta is not None else change
    body, extra = encode_change(item)
    if len(body) > nc.max_payload:
        raise MessageTooLarge(
            f"{change.watch_type} change is {len(body)} bytes, server max_payload is "
            f"{nc.max_payload}"
        )
    digest = digest or change.payload_digest()
    all_headers = {
        subjects.HEADER_MSG_ID: subjects.msg_id(
            change.watch_type,
            change.dedup_key,
            change.consul_index,
            datacenter=change.datacenter,
        ),
        subjects.HEADER_PAYLOAD_DIGEST: digest,
        subjects.HEADER_OBSERVED_AT: f"{change.observed_at.timestamp():.6f}",
        **extra,
        **(headers or {}),
    }
    subject = subjects.answer_subject(change.watch_type, delta=delta is not None)
    ack = await js.publish(subject, body, headers=all_headers)
    if ack.duplicate and await _stored_digest_differs(js, ack.seq, digest):
        # A new change on an index reused after a Consul index reset: same id, other payload.
        all_headers[subjects.HEADER_MSG_ID] = subjects.msg_id(
            change.watch_type,
            change.dedup_key,
            change.consul_index,
            digest,
            datacenter=change.datacenter,
        )
        ack = await js.publish(subject, body, headers=all_headers)
    return PublishResult(stream_seq=ack.seq, duplicate=bool(ack.duplicate))


async def publish_resync(js: JetStreamContext, request: ResyncRequested) -> None:
    """Publish one ``ResyncRequested`` on the command subject (its id collapses repeats)."""
    await js.publish(
        subjects.SUBJECT_CMD_RESYNC,
        request.model_dump_json().encode(),
        headers={subjects.HEADER_MSG_ID: subjects.resync_msg_id(request.request_id)},
    )


async def _stored_digest_differs(js: JetStreamContext, seq: int, digest: str) -> bool:
    """Tell whether the message JetStream kept under a duplicate id has another payload."""
    try:
        stored = await js.get_msg(subjects.STREAM_EVENTS, seq)
    except NotFoundError:
        return False
    stored_digest = (stored.headers or {}).get(subjects.HEADER_PAYLOAD_DIGEST)
    return stored_digest is not None and stored_digest != digest


async def kv_put(
    js: JetStreamContext, key: str, value: bytes, headers: Mapping[str, str] | None = None
) -> int:
    """Write a KV entry through its stream subject so that headers (trace context) travel."""
    ack = await js.publish(
        subjects.kv_subject(subjects.BUCKET_NODES, key), value, headers=dict(headers or {})
    )
    return int(ack.seq)


async def kv_delete(
    js: JetStreamContext, key: str, headers: Mapping[str, str] | None = None
) -> int:
    """Delete a KV entry (a ``DEL`` marker, as ``KeyValue.delete`` writes it)."""
    return await kv_put(js, key, b"", {subjects.HEADER_KV_OPERATION: "DEL", **(headers or {})})


@dataclass(frozen=True)
class KvUpdate:
    """One entry of the nodes bucket as seen by a watcher."""

    key: str
    value: bytes
    deleted: bool
    headers: Mapping[str, str]
    pending: int
    """Messages still to come before the watcher has caught up."""
    seq: int = 0
    """Stream sequence of the entry (the last one of its key)."""


def _kv_update(msg: Msg) -> KvUpdate:
    prefix = f"$KV.{subjects.BUCKET_NODES}."
    headers = msg.headers or {}
    operation = headers.get(subjects.HEADER_KV_OPERATION)
    return KvUpdate(
        key=msg.subject[len(prefix) :],
        value=msg.data,
        deleted=operation in ("DEL", "PURGE"),
        headers=headers,
        pending=msg.metadata.num_pending,
        seq=msg.metadata.sequence.stream,
    )


async def watch_nodes_bucket(js: JetStreamContext) -> AsyncGenerator[KvUpdate | None, None]:
    """Yield the latest entry of every key, then ``None`` once caught up, then live updates."""
    info = await js.stream_info(f"KV_{subjects.BUCKET_NODES}")
    sub = await js.subscribe(
        f"$KV.{subjects.BUCKET_NODES}.>",
        ordered_consumer=True,
        deliver_policy=js_api.DeliverPolicy.LAST_PER_SUBJECT,
        idle_heartbeat=5.0,
        flow_control=True,
    )
    try:
        caught_up = info.state.messages == 0
        if caught_up:
            yield None
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                if not caught_up:
                    # The bucket had only purged history: nothing more will come now.
                    latest = await js.stream_info(f"KV_{subjects.BUCKET_NODES}")
                    if latest.state.messages == 0:
                        caught_up = True
                        yield None
                continue
            update = _kv_update(msg)
            yield update
            if not caught_up and update.pending == 0:
                caught_up = True
                yield None
    finally:
        await asyncio.shield(sub.unsubscribe())
