"""The one exception type for user-facing failures.

Anything a user can cause (a bad model, a board that is too small, a missing
toolchain) raises TinybuildError with a message that names the thing and the
fix; the CLI and the SCons tool print it without a traceback.
"""


class TinybuildError(Exception):
    """A failure the user can act on; str(error) is the whole message."""


def shown(name, limit: int = 80) -> str:
    """A name from a model (tensor, op, custom code) or a user path, safe to
    print in a terminal line or a Markdown report: control characters,
    newlines and escape codes become visible ``\\x..`` escapes, and very long
    names are cut, so a crafted name cannot forge or hide output lines."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", errors="backslashreplace")
    text = str(name)
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or ch in "\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e":
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    result = "".join(out)
    if limit and len(result) > limit:
        result = result[: limit - 3] + "..."
    return result
