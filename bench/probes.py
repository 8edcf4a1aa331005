"""Reads the services' own gauges: Prometheus text, consumer lag, view contents, memory."""

import asyncio
import re
import time
from typing import Any

import httpx
import nats
from nats.js.errors import NotFoundError

from contracts import subjects

METRICS_RETRY_SECONDS = 60.0
"""How long a ``/metrics`` read waits for a service that is being restarted."""

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition as (name, labels, value)."""
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group(2) or ""))
        samples.append((match.group(1), labels, float(match.group(3))))
    return samples


async def metrics(http: httpx.AsyncClient, url: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a service's ``/metrics``, waiting out a restart of the service."""
    deadline = time.monotonic() + METRICS_RETRY_SECONDS
    while True:
        try:
            return parse_metrics((await http.get(url + "/metrics")).text)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def by_label(
    samples: list[tuple[str, dict[str, str], float]], name: str, label: str
) -> dict[str, float]:
    """Sum of one metric grouped by one label."""
    totals: dict[str, float] = {}
    for sample, labels, value in samples:
        if sample == name:
            key = labels.get(label, "")
            totals[key] = totals.get(key, 0.0) + value
    return totals


def histogram(samples: list[tuple[str, dict[str, str], float]], name: str) -> dict[str, Any]:
    """Count, sum and cumulative buckets of an unlabelled histogram."""
    buckets: dict[str, float] = {}
    count = total = 0.0
    for sample, labels, value in samples:
        if sample == name + "_bucket":
            buckets[labels["le"]] = value
        elif sample == name + "_count":
            count = value
        elif sample == name + "_sum":
            total = value
    return {"count": count, "sum": total, "buckets": buckets}


def histogram_delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """The histogram of what was observed between two reads."""
    return {
        "count": after["count"] - before["count"],
        "sum": after["sum"] - before["sum"],
        "buckets": {
            le: value - before["buckets"].get(le, 0.0) for le, value in after["buckets"].items()
        },
    }


def bucket_quantile(hist: dict[str, Any], q: float) -> float | None:
    """Upper bound of the bucket holding quantile ``q`` (seconds), as Prometheus would bound it."""
    count = hist["count"]
    if not count:
        return None
    for le, value in sorted(hist["buckets"].items(), key=lambda kv: float(kv[0])):
        if value >= q * count:
            return float(le)
    return None


class LagProbe:
    """Reads ``num_pending``/``num_ack_pending`` of the enricher's durable consumer."""

    def __init__(self, url: str) -> None:
        """Bind to a NATS URL; :meth:`connect` opens the connection."""
        self.url = url
        self.nc: Any = None

    async def connect(self) -> None:
        """Open the NATS connection."""
        self.nc = await nats.connect(self.url, name="nodeview-bench")

    async def read(self) -> dict[str, int]:
        """Pending and ack-pending messages of the ``enricher`` consumer."""
        try:
            info = await self.nc.jetstream().consumer_info(
                subjects.STREAM_EVENTS, subjects.CONSUMER_ENRICHER
            )
        except NotFoundError:
            return {"num_pending": -1, "num_ack_pending": -1}
        return {"num_pending": info.num_pending, "num_ack_pending": info.num_ack_pending}

    async def close(self) -> None:
        """Close the connection."""
        if self.nc is not None:
            await self.nc.close()


class StreamProbe:
    """Reads the size of the ``NODEVIEW_EVENTS`` stream: what the relay has published so far."""

    def __init__(self, url: str) -> None:
        """Bind to a NATS URL; :meth:`connect` opens the connection."""
        self.url = url
        self.nc: Any = None

    async def connect(self) -> "StreamProbe":
        """Open the NATS connection."""
        self.nc = await nats.connect(self.url, name="nodeview-bench-stream")
        return self

    async def read(self) -> dict[str, int]:
        """Bytes and messages the stream holds."""
        info = await self.nc.jetstream().stream_info(subjects.STREAM_EVENTS)
        return {"bytes": int(info.state.bytes), "messages": int(info.state.messages)}

    async def close(self) -> None:
        """Close the connection."""
        if self.nc is not None:
            await self.nc.close()
