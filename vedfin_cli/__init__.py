"""The `vedfin` command: the top layer, on the core (`vedfin`), the generator
(`seeds_gen`), the orchestration and the benchmarks; nothing imports it."""
