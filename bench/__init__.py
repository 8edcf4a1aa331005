"""Benchmark of the old request path against nodeview: latency, throughput, freshness, load."""
