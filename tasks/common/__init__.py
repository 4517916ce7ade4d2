"""Shared task utilities: the TaskModule base, and the harness that turns a config into a stored result."""
