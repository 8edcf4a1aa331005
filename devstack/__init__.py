"""Local stand-ins for external systems, used by tests, local runs and benchmarks."""
