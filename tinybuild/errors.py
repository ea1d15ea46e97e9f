"""The one exception type for user-facing failures.

Anything a user can cause (a bad model, a board that is too small, a missing
toolchain) raises TinybuildError with a message that names the thing and the
fix; the CLI and the SCons tool print it without a traceback.
"""


class TinybuildError(Exception):
    """A failure the user can act on; str(error) is the whole message."""
