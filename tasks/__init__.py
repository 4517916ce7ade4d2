"""The reproduction suite: the paper's four settings on top of the aaren library (see tasks/README.md)."""
