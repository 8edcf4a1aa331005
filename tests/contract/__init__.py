"""Contract tests against real Consul and NATS servers in containers (where Docker works)."""
