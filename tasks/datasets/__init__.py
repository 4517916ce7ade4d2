"""Data layer: where datasets live (paths), what they are (registry), how to get them (download), how to read
them (readers), and small generated files in every real format for tests (fixtures)."""
