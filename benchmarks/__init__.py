"""Benchmarks of the library and the tasks; thin CLIs in scripts/bench_*.py, imported from the repository root.

common (clock, peak memory, provenance, point store), interleave (the one timer: candidates round-robin, medians
of CPU and wall time), configs, steppers, streaming, exported_kv, training, report, plots.
Method: docs/efficiency.md."""
