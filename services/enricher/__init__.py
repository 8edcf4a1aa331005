"""The enricher: turns Consul change events into per-node views in the KV bucket."""
