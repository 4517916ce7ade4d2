"""Data layer: where datasets live (paths), what they are (registry), how to get them (download), how to read
them (readers). Small generated files in every format, for tests, are tests/fixtures.py."""
