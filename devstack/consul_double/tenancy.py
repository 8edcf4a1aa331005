"""Namespaces and admin partitions, refused as Consul's community edition refuses them.

Consul CE (``agent/http_ce.go``) answers ``400`` to a non-empty ``ns`` query parameter or
``X-Consul-Namespace`` header, and to a non-empty ``partition`` or ``X-Consul-Partition``, on
every endpoint that reads them. Node-level endpoints (the agent's members, the catalog's node
list) read only the partition; user events and the status endpoints read neither.
"""

from devstack.consul_double.errors import HttpError
from devstack.consul_double.protocol import Request

PARTITION_ONLY = frozenset({"/v1/agent/members", "/v1/catalog/nodes"})
"""Endpoint templates that ignore ``ns`` and refuse ``partition``."""

NO_TENANCY = frozenset(
    {"/v1/event/fire/{name...}", "/v1/event/list", "/v1/status/leader", "/v1/status/peers"}
)
"""Endpoint templates that read neither."""

NAMESPACE_ERROR = "Namespaces are a Consul Enterprise feature"
PARTITION_ERROR = "Partitions are a Consul Enterprise feature"


def check_tenancy(request: Request, endpoint: str) -> None:
    """Raise Consul CE's 400 when ``request`` names a namespace or partition the endpoint reads."""
    if endpoint in NO_TENANCY:
        return
    if endpoint not in PARTITION_ONLY:
        _refuse(request, "ns", "X-Consul-Namespace", NAMESPACE_ERROR)
    _refuse(request, "partition", "X-Consul-Partition", PARTITION_ERROR)


def _refuse(request: Request, parameter: str, header: str, feature: str) -> None:
    if request.headers.get(header.lower()):
        raise HttpError(400, f'Invalid header: "{header}" - {feature}')
    if request.query.get(parameter):
        raise HttpError(400, f'Invalid query parameter: "{parameter}" - {feature}')
