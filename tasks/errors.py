"""Errors the harness raises for bad configuration: a ValueError that says which key is wrong and why."""


class ConfigError(ValueError):
    """A config value is missing, of the wrong type or out of range. The message names the key."""
