"""Benchmarks: they print figures and ratios (run as `vedfin bench ...`), never timed tests."""
