"""Sizes, durations and sample counts of a full and a ``--quick`` benchmark run."""

from dataclasses import dataclass


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
