"""A tiny test-only task (next-step regression on generated waves) that exercises the harness end to end.

Its configs live in tests/harness_toy/conf and join the search path with
`hydra.searchpath=[file://<repo>/tests/harness_toy/conf]`.
"""
