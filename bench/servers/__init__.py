"""Benchmark servers: small scripts the harness starts, one per process."""
