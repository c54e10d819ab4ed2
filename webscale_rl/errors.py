"""Errors a user can act on. The CLI prints them without a stack trace and exits 1."""


class WebscaleError(Exception):
    """A problem with input, config or environment, with a message that says what to do."""


class ConfigError(WebscaleError):
    """Invalid configuration: unknown key, bad value, unsafe table name."""
