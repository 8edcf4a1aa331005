"""An OTLP/HTTP trace receiver for tests: collects the spans the processes export."""

import asyncio
import gzip
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from devstack.nats import free_port
from services.health import EmbeddedServer


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, flattened."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    service: str
    instance: str
    links: tuple[str, ...]


@dataclass
class OtlpReceiver:
    """A real HTTP server on 127.0.0.1 that accepts ``POST /v1/traces`` (protobuf)."""

    port: int = field(default_factory=free_port)
    spans: list[ReceivedSpan] = field(default_factory=list)
    exports: list[bytes] = field(default_factory=list)
    """Every export request as received (decompressed), to search for what must not leak."""
    server: EmbeddedServer | None = None
    task: "asyncio.Task[None] | None" = None

    @property
    def endpoint(self) -> str:
        """The value for OTEL_EXPORTER_OTLP_ENDPOINT."""
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> FastAPI:
        """Return the receiver's app."""
        app = FastAPI()

        @app.post("/v1/traces")
        async def traces(request: Request) -> Response:
            body = await request.body()
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            self.exports.append(body)
            message = ExportTraceServiceRequest()
            message.ParseFromString(body)
            for resource_spans in message.resource_spans:
                attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            ReceivedSpan(
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_id=span.parent_span_id.hex(),
                                name=span.name,
                                service=attrs.get("service.name", ""),
                                instance=attrs.get("service.instance.id", ""),
                                links=tuple(link.span_id.hex() for link in span.links),
                            )
                        )
            return Response(
                ExportTraceServiceResponse().SerializeToString(),
                media_type="application/x-protobuf",
            )

        return app

    async def start(self) -> None:
        """Start listening."""
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=self.port, log_config=None, lifespan="off"
        )
        self.server = EmbeddedServer(config)
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:  # noqa: ASYNC110 (uvicorn offers no started event)
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop listening."""
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            await self.task
