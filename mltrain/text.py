"""Text for a terminal: what a script stored or printed (metric names, tags, string metrics, errors,
logs) is shown with its control characters escaped, so it cannot move the cursor, retitle the window,
ring the bell or write the user's clipboard (OSC 52).

``escape_controls`` writes each C0 control, DEL and each C1 control (U+0080-U+009F) as ``\\xNN``,
except the characters in ``keep``: nothing in a table cell, ``LINES`` (newline, tab) in multi-line
text, ``LOG`` (also carriage return, which progress bars redraw their line with) in a log stream.
:class:`TerminalStream` does the same for bytes arriving in pieces. Standard library only.
"""

from __future__ import annotations

import codecs
import functools
import re
from typing import BinaryIO

LINES = "\n\t"
LOG = "\n\t\r"


@functools.lru_cache(maxsize=8)
def _controls(keep: str) -> re.Pattern[str]:
    chars = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)) if chr(c) not in keep]
    return re.compile("[" + re.escape("".join(chars)) + "]")


def _hex(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def fmt_bytes(n: int | None) -> str:
    """A byte count for people: ``512 B``, ``1.5 MB`` (powers of 1000); ``-`` for None."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def escape_controls(text: str, keep: str = "") -> str:
    """``text`` with every control character not in ``keep`` written as ``\\xNN``."""
    return _controls(keep).sub(_hex, text)


class TerminalStream:
    """A binary output (``sys.stdout.buffer``) that bytes a program wrote are copied to with their
    control characters escaped (``keep``: LOG); a UTF-8 character split across writes is kept whole,
    and bytes that are not UTF-8 are shown as ``\\xNN``."""

    def __init__(self, out: BinaryIO, keep: str = LOG) -> None:
        self.out = out
        self.keep = keep
        self._decoder = codecs.getincrementaldecoder("utf-8")("backslashreplace")

    def text(self, data: bytes) -> str:
        """``data`` decoded (with what an earlier call held back) and escaped."""
        return escape_controls(self._decoder.decode(data), self.keep)

    def write(self, data: bytes) -> None:
        self.out.write(self.text(data).encode())
        self.out.flush()


def print_error(message: object, prefix: str = "mltrain: error: ") -> None:
    """``prefix`` and ``message`` (an exception, whose text may quote stored names) on stderr, escaped."""
    import sys

    print(prefix + escape_controls(str(message), LINES), file=sys.stderr)
