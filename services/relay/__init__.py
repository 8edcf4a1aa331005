"""The relay: Consul watch payloads and blocking-query answers into the NATS event stream."""
