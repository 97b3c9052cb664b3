"""Slow reference implementations, used by tests and benchmarks only."""
