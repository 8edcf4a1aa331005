"""Sizes, durations and sample counts of a full and a ``--quick`` benchmark run."""

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Profile:
    """Everything that makes a run long or short; every loop below is bounded by these."""

    name: str
    sizes: tuple[int, ...]
    """Node counts of the latency, throughput, load and resync phases."""
    services: int
    """Distinct service names in the generated clusters."""
    consul_latency: float
    """Per-request delay of the Consul double in the latency phases (seconds)."""
    latency_requests: int
    latency_seconds: float
    legacy_max_nodes: int
    """Largest size the old backend runs at: one of its misses costs a new client per node."""
    miss_samples: int
    miss_seconds: float
    throughput_seconds: float
    concurrencies: tuple[int, ...]
    steady_seconds: float
    freshness_size: int
    freshness_changes: int
    resync_size: int
    resync_latency: float
    churn_rate: float
    churn_seconds: float
    rss_nodes: int
    """Nodes of the memory phase; 0 reports the memory of the last size phase instead."""
    rss_services_per_node: int


FULL = Profile(
    name="full",
    sizes=(10, 1_000, 5_000),
    services=20,
    consul_latency=0.002,
    latency_requests=2_000,
    latency_seconds=10.0,
    legacy_max_nodes=1_000,
    miss_samples=5,
    miss_seconds=30.0,
    throughput_seconds=10.0,
    concurrencies=(1, 32),
    steady_seconds=30.0,
    freshness_size=1_000,
    freshness_changes=100,
    resync_size=5_000,
    resync_latency=0.020,
    churn_rate=100.0,
    churn_seconds=60.0,
    rss_nodes=10_000,
    rss_services_per_node=10,
)

QUICK = Profile(
    name="quick",
    sizes=(100,),
    services=8,
    consul_latency=0.002,
    latency_requests=100,
    latency_seconds=1.0,
    legacy_max_nodes=100,
    miss_samples=2,
    miss_seconds=3.0,
    throughput_seconds=1.0,
    concurrencies=(1, 8),
    steady_seconds=2.0,
    freshness_size=100,
    freshness_changes=3,
    resync_size=100,
    resync_latency=0.020,
    churn_rate=20.0,
    churn_seconds=2.0,
    rss_nodes=0,
    rss_services_per_node=10,
)


@dataclass(frozen=True)
class CostProfile:
    """Sizes and sample counts of the per-change cost run (``--mode cost``)."""

    name: str
    shapes: tuple[tuple[int, int], ...]
    """(nodes, service names) of the clusters the cost of one change is measured on."""
    changes_per_kind: int
    """Changes of each kind measured one after another in every shape."""
    cpu_nodes: tuple[int, ...]
    """Node counts at which enricher CPU per change is measured (with the fewest names)."""
    cpu_pairs: int
    """node_fail/recover pairs of the CPU measurement (two changes each)."""
    freshness_shapes: tuple[tuple[int, int], ...]
    """(nodes, service names) of the freshness-with-floor measurement."""
    freshness_rounds: int
    """Changes of each freshness kind, made one at a time."""
    api_replicas: int
    """API replicas a change must be visible on."""
    consul_latency: float
    """Per-request delay of the Consul double (seconds)."""
    churn_shape: tuple[int, int] | None
    churn_rate: float
    churn_seconds: float
    resync_shapes: tuple[tuple[int, int], ...]
    """Shapes a full resync is timed on, at ``resync_latency``."""
    resync_latency: float


COST_FULL = CostProfile(
    name="cost",
    shapes=(
        (100, 10),
        (100, 500),
        (1_000, 10),
        (1_000, 500),
        (5_000, 10),
        (5_000, 500),
        (10_000, 10),
        (10_000, 500),
    ),
    changes_per_kind=3,
    cpu_nodes=(1_000, 10_000),
    cpu_pairs=20,
    freshness_shapes=((100, 10), (1_000, 300), (10_000, 300)),
    freshness_rounds=50,
    api_replicas=2,
    consul_latency=0.002,
    churn_shape=(1_000, 10),
    churn_rate=100.0,
    churn_seconds=60.0,
    resync_shapes=((5_000, 10), (5_000, 500), (10_000, 500)),
    resync_latency=0.020,
)

COST_QUICK = CostProfile(
    name="cost-quick",
    shapes=((100, 10),),
    changes_per_kind=1,
    cpu_nodes=(100,),
    cpu_pairs=2,
    freshness_shapes=((100, 10),),
    freshness_rounds=2,
    api_replicas=2,
    consul_latency=0.002,
    churn_shape=(100, 10),
    churn_rate=50.0,
    churn_seconds=4.0,
    resync_shapes=((100, 10),),
    resync_latency=0.020,
)


def freshness_only(profile: CostProfile, shape: tuple[int, int], rounds: int) -> CostProfile:
    """``profile`` cut down to the one-at-a-time freshness of one shape (an A/B of a change)."""
    return replace(
        profile,
        shapes=(),
        freshness_shapes=(shape,),
        freshness_rounds=rounds,
        cpu_nodes=(),
        churn_shape=None,
        resync_shapes=(),
    )
