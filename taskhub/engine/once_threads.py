"""The background threads a worker process starts once: the staging loop, the result check.

Each is started by the first caller and shared by the rest (a worker's signals may fire
more than once); the event it returns stops it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class OnceThread:
    """A named daemon thread, started at most once per process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None

    def start(self, run: Callable[[threading.Event], None]) -> threading.Event:
        """Start ``run(stop)`` on the thread unless it runs already; returns ``stop``."""
        with self._lock:
            if self._stop is None:
                self._stop = threading.Event()
                threading.Thread(
                    target=run, args=(self._stop,), name=self.name, daemon=True
                ).start()
            return self._stop
