"""The one exception users see: a clear, one-line reason, never a traceback."""


class ScError(Exception):
    """A user-facing error; its message is printed as is by the CLI."""
