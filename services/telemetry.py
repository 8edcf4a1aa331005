"""OpenTelemetry setup shared by the services, and W3C trace context in NATS headers."""

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, SpanContext

from services.config import BaseServiceSettings

log = logging.getLogger("nodeview.telemetry")

TRACER_NAME = "nodeview"


class FileSpanExporter(SpanExporter):
    """Appends each finished span as one JSON line to a file (for a look without Jaeger)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write the spans."""
        lines = [json.dumps(json.loads(span.to_json())) + "\n" for span in spans]
        with self._lock, self._path.open("a", encoding="utf-8") as out:
            out.writelines(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""


def setup_tracing(settings: BaseServiceSettings, default_service_name: str) -> bool:
    """Install a tracer provider when an exporter is configured; else tracing stays a no-op."""
    exporters: list[SpanExporter] = []
    kinds = {k.strip() for k in (settings.otel_traces_exporter or "").split(",") if k.strip()}
    if settings.otel_exporter_otlp_endpoint or "otlp" in kinds:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())
    if "console" in kinds:
        exporters.append(ConsoleSpanExporter())
    if settings.nodeview_traces_file is not None:
        exporters.append(FileSpanExporter(settings.nodeview_traces_file))
    if not exporters or "none" in kinds:
        return False
    resource = Resource.create({"service.name": settings.otel_service_name or default_service_name})
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing on", extra={"event": "telemetry.on", "exporters": len(exporters)})
    return True


def shutdown_tracing() -> None:
    """Flush and stop the tracer provider, if one was installed."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def tracer() -> trace.Tracer:
    """Return nodeview's tracer (a no-op one while tracing is off)."""
    return trace.get_tracer(TRACER_NAME)


def inject_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """Add the current trace context (``traceparent``/``tracestate``) to NATS headers."""
    carrier = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    """Return the trace context carried by NATS headers (empty when there is none)."""
    return propagate.extract(dict(headers or {}))


def links_from(headers_list: Sequence[Mapping[str, str] | None]) -> list[Link]:
    """Return span links to every valid trace context in ``headers_list``."""
    links: list[Link] = []
    for headers in headers_list:
        span_context: SpanContext = trace.get_current_span(
            extract_context(headers)
        ).get_span_context()
        if span_context.is_valid:
            links.append(Link(span_context))
    return links


def current_ids() -> dict[str, Any]:
    """Return ``trace_id``/``span_id`` of the current span, for log lines (empty outside)."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return {}
    return {
        "trace_id": format(span_context.trace_id, "032x"),
        "span_id": format(span_context.span_id, "016x"),
    }
