"""Selectable fields of the Consul types the double lists, as go-bexpr derives them from Consul.

Each constant mirrors one struct of ``agent/structs`` with its ``bexpr:"-"`` fields left out
(raft indexes, enterprise meta, locality, check definitions, proxy config maps), so a selector
is valid here exactly when Consul would accept it for that endpoint.
"""

from devstack.consul_double.filtering import (
    BOOL,
    INT,
    STRING,
    STRING_MAP,
    STRINGS,
    Field,
    struct,
    struct_list,
    struct_map,
)

WEIGHTS = struct(Passing=INT, Warning=INT)
SERVICE_ADDRESS = struct(Address=STRING, Port=INT)
SERVICE_CONNECT = struct(Native=BOOL)
MESH_GATEWAY = struct(Mode=STRING)

UPSTREAM = struct(
    DestinationType=STRING,
    DestinationNamespace=STRING,
    DestinationPartition=STRING,
    DestinationPeer=STRING,
    DestinationName=STRING,
    Datacenter=STRING,
    LocalBindAddress=STRING,
    LocalBindPort=INT,
    LocalBindSocketPath=STRING,
    LocalBindSocketMode=STRING,
    MeshGateway=MESH_GATEWAY,
)

EXPOSE = struct(
    Checks=BOOL,
    Paths=struct_list(
        struct(
            ListenerPort=INT,
            Path=STRING,
            LocalPathPort=INT,
            Protocol=STRING,
            ParsedFromCheck=BOOL,
        )
    ),
)

CONNECT_PROXY = struct(
    EnvoyExtensions=struct_list(
        struct(Name=STRING, Required=BOOL, ConsulVersion=STRING, EnvoyVersion=STRING)
    ),
    DestinationServiceName=STRING,
    DestinationServiceID=STRING,
    LocalServiceAddress=STRING,
    LocalServicePort=INT,
    LocalServiceSocketPath=STRING,
    Mode=STRING,
    Upstreams=struct_list(UPSTREAM),
    MeshGateway=MESH_GATEWAY,
    Expose=EXPOSE,
    TransparentProxy=struct(OutboundListenerPort=INT, DialedDirectly=BOOL),
    AccessLogs=struct(
        Enabled=BOOL,
        DisableListenerLogs=BOOL,
        Type=STRING,
        Path=STRING,
        JSONFormat=STRING,
        TextFormat=STRING,
    ),
)
"""``structs.ConnectProxyConfig`` (``Config`` and ``MutualTLSMode`` are not selectable)."""

NODE = struct(
    ID=STRING,
    Node=STRING,
    Address=STRING,
    Datacenter=STRING,
    Partition=STRING,
    PeerName=STRING,
    TaggedAddresses=STRING_MAP,
    Meta=STRING_MAP,
)
"""``structs.Node``: items of ``/v1/catalog/nodes``."""

NODE_SERVICE = struct(
    Kind=STRING,
    ID=STRING,
    Service=STRING,
    Tags=STRINGS,
    Address=STRING,
    TaggedAddresses=struct_map(SERVICE_ADDRESS),
    Meta=STRING_MAP,
    Port=INT,
    SocketPath=STRING,
    Weights=WEIGHTS,
    EnableTagOverride=BOOL,
    Proxy=CONNECT_PROXY,
    Connect=SERVICE_CONNECT,
    PeerName=STRING,
)
"""``structs.NodeService``: items of ``/v1/catalog/node-services`` and ``/v1/catalog/node``."""

SERVICE_NODE = struct(
    ID=STRING,
    Node=STRING,
    Address=STRING,
    Datacenter=STRING,
    TaggedAddresses=STRING_MAP,
    NodeMeta=STRING_MAP,
    ServiceKind=STRING,
    ServiceID=STRING,
    ServiceName=STRING,
    ServiceTags=STRINGS,
    ServiceAddress=STRING,
    ServiceTaggedAddresses=struct_map(SERVICE_ADDRESS),
    ServiceWeights=WEIGHTS,
    ServiceMeta=STRING_MAP,
    ServicePort=INT,
    ServiceSocketPath=STRING,
    ServiceEnableTagOverride=BOOL,
    ServiceProxy=CONNECT_PROXY,
    ServiceConnect=SERVICE_CONNECT,
    PeerName=STRING,
)
"""``structs.ServiceNode``: items of ``/v1/catalog/service/<name>`` and ``/v1/catalog/services``."""

HEALTH_CHECK = struct(
    Node=STRING,
    CheckID=STRING,
    Name=STRING,
    Status=STRING,
    Notes=STRING,
    Output=STRING,
    ServiceID=STRING,
    ServiceName=STRING,
    ServiceTags=STRINGS,
    Type=STRING,
    Interval=STRING,
    Timeout=STRING,
    ExposedPort=INT,
    PeerName=STRING,
)
"""``structs.HealthCheck``: items of ``/v1/health/{state,node,checks}``."""

CHECK_SERVICE_NODE = struct(
    Node=NODE,
    Service=NODE_SERVICE,
    Checks=struct_list(HEALTH_CHECK),
)
"""``structs.CheckServiceNode``: items of ``/v1/health/service`` and of the UI service dump."""

NODE_INFO = struct(
    ID=STRING,
    Node=STRING,
    Partition=STRING,
    PeerName=STRING,
    Address=STRING,
    TaggedAddresses=STRING_MAP,
    Meta=STRING_MAP,
    Services=struct_list(NODE_SERVICE),
    Checks=struct_list(HEALTH_CHECK),
)
"""``structs.NodeInfo``: items of ``/v1/internal/ui/nodes`` (no ``Datacenter``, as in Consul)."""

__all__ = [
    "CHECK_SERVICE_NODE",
    "HEALTH_CHECK",
    "NODE",
    "NODE_INFO",
    "NODE_SERVICE",
    "SERVICE_NODE",
    "Field",
]
