"""SIGTERM (a cluster's time limit, `kill`, `timeout`) as an exception, so that cleanup code runs.

Python's default SIGTERM ends the process at once: no `finally`, no `except BaseException`, so a
half-written temporary file stays behind. Within `terminate_raises()` SIGTERM raises
`Terminated` (a SystemExit with the shell's code, 128 + 15) instead, like Ctrl-C's KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class Terminated(SystemExit):
    """SIGTERM arrived; the process exits with code 143 once cleanup has run."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def _raise(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def terminate_raises():
    """Within the block, SIGTERM raises `Terminated`; the previous handler comes back after it. Only the
    main thread can take signals: elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
