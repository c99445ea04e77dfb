"""One live status line while a resource runs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class LiveLine:
    """Rewrites one line on a terminal; prints a line every ``interval_s`` elsewhere (logs, CI)."""

    def __init__(self, stream: TextIO | None = None, interval_s: float = 5.0, enabled: bool = True) -> None:
        """Create a live line.

        Args:
            stream: Where to write (standard error by default).
            interval_s: Least time between two printed lines when the stream is not a terminal.
            enabled: ``False`` prints only :meth:`done` lines.
        """
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._interval_s = interval_s
        self._enabled = enabled
        self._last_print = float("-inf")
        self._width = 0

    def update(self, text: str) -> None:
        """Show ``text`` as the current status."""
        if not self._enabled:
            return
        if self._tty:
            pad = max(0, self._width - len(text))
            self._stream.write("\r" + text + " " * pad)
            self._width = len(text)
            self._stream.flush()
            return
        now = time.monotonic()
        if now - self._last_print >= self._interval_s:
            self._stream.write(text + "\n")
            self._stream.flush()
            self._last_print = now

    def done(self, text: str) -> None:
        """End the live line with a final ``text`` on its own line."""
        if self._tty and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
        self._stream.write(text + "\n")
        self._stream.flush()
        self._width = 0
