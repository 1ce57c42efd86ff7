"""Tools around the runtime: benchmarks (``bench``), the machine check (``doctor``), Triton export and its client."""
