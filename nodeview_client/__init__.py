"""A small typed Python client of the nodeview HTTP API: models, ETag-aware polling, live events."""

from contracts.views import (
    ErrorResponse,
    FlushResponse,
    MetaEvent,
    NodeDeletedEvent,
    NodeEntry,
    NodeServicesResponse,
    NodesResponse,
    ServiceNamesResponse,
)
from nodeview_client.client import NodesPoll, NodeviewClient, NodeviewError
from nodeview_client.events import MetaChanged, NodeChanged, NodeDeleted, NodeEvent, Snapshot

__all__ = [
    "ErrorResponse",
    "FlushResponse",
    "MetaChanged",
    "MetaEvent",
    "NodeChanged",
    "NodeDeleted",
    "NodeDeletedEvent",
    "NodeEntry",
    "NodeEvent",
    "NodeServicesResponse",
    "NodesPoll",
    "NodesResponse",
    "NodeviewClient",
    "NodeviewError",
    "ServiceNamesResponse",
    "Snapshot",
]
