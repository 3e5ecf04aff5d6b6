"""Stages of a stream on their own threads: a producer running ahead of its consumer (`Ahead`), a consumer
running behind its producer (`Behind`), each through a bounded queue.

`uvssm restore` decodes (ffmpeg), runs the model, and encodes (ffmpeg) each frame; run in turn, the model
waits for both. With the decoder ahead and the encoder behind, the model's thread only runs the model: a
restore takes as long as its slowest stage, not the sum of the three. ffmpeg's pipes and torch's kernels
release the GIL, so the threads overlap even in CPython.

Errors: an exception raised on a stage's thread (a UvssmError naming the file, a BrokenPipe, anything) is
raised again, the same object, on the calling thread at its next call, so the caller reports it as it would
have without threads. Each stage adds up its busy seconds (`busy`) and how long the caller waited for it
(`waited`). With `depth=0` a stage runs on the caller's thread, in turn (the sequential reference).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Iterable, Iterator

_ITEM, _END, _ERROR = "item", "end", "error"
_POLL = 0.1  # seconds between looks at the stop flag while a queue is full or empty


class Ahead:
    """Iterate `source` (e.g. a decoder) on a thread, at most `depth` items ahead of the caller.

    `close()` (also on leaving a `with` block) stops the thread and closes `source` there (a generator's
    `finally` runs: ffmpeg is stopped)."""

    def __init__(self, source: Iterable, depth: int = 8, name: str = "uvssm-ahead"):
        self.depth = depth
        self.busy = 0.0  # seconds spent producing items
        self.waited = 0.0  # seconds the caller spent getting items (waiting; inline: producing them)
        self._source = source
        self._stop = threading.Event()
        self._done = False
        if depth > 0:
            self._queue: queue.Queue = queue.Queue(depth)
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()
        else:
            self._iter = iter(source)

    def _put(self, entry: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        it = None
        try:
            it = iter(self._source)
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    self._put((_END, None))
                    return
                finally:
                    self.busy += time.perf_counter() - t0
                if not self._put((_ITEM, item)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._put((_ERROR, exc))
        finally:
            close = getattr(it, "close", None)  # None too where iter() itself raised
            if close is not None:
                close()

    def __iter__(self) -> Iterator:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        t0 = time.perf_counter()
        if self.depth <= 0:
            try:
                return next(self._iter)
            except BaseException:
                self._done = True
                raise
            finally:
                self.busy += time.perf_counter() - t0
                self.waited += time.perf_counter() - t0
        kind, value = self._queue.get()
        self.waited += time.perf_counter() - t0
        if kind == _END:
            self._done = True
            raise StopIteration
        if kind == _ERROR:
            self._done = True
            raise value
        return value

    def close(self) -> None:
        self._done = True
        if self.depth <= 0:
            close = getattr(self._iter, "close", None)
            if close is not None:
                close()
            return
        self._stop.set()
        while self._thread.is_alive():
            try:  # make room, so a producer blocked on a full queue sees the flag
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(_POLL)

    def __enter__(self) -> "Ahead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Behind:
    """Call `consume(item)` for each `put(item)` on a thread, in order, at most `depth` items behind.

    `consume` returns False to stop taking items (e.g. the encoder has quit); `put` then returns False.
    `finish()` waits for every item put; `abort()` drops those waiting and stops the thread. An exception in
    `consume` is raised again by the next `put` or `finish`. `completed` counts the items consumed."""

    def __init__(self, consume: Callable[[Any], bool | None], depth: int = 4, name: str = "uvssm-behind"):
        self.consume, self.depth = consume, depth
        self.busy = 0.0  # seconds spent consuming items
        self.waited = 0.0  # seconds the caller spent handing items over (waiting; inline: consuming them)
        self.completed = 0
        self._stopped = False  # consume returned False
        self._error: BaseException | None = None
        self._abort = threading.Event()
        if depth > 0:
            self._queue: queue.Queue = queue.Queue(depth)
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def _one(self, item) -> None:
        t0 = time.perf_counter()
        try:
            if self.consume(item) is False:
                self._stopped = True
            else:
                self.completed += 1
        finally:
            self.busy += time.perf_counter() - t0

    def _run(self) -> None:
        try:
            while not self._abort.is_set():
                try:
                    kind, item = self._queue.get(timeout=_POLL)
                except queue.Empty:
                    continue
                if kind == _END:
                    return
                self._one(item)
                if self._stopped:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, item) -> bool:
        """Hand `item` over; False once `consume` has stopped taking items."""
        self._raise()
        if self._stopped:
            return False
        if self.depth <= 0:
            t0 = time.perf_counter()
            try:
                self._one(item)
            finally:
                self.waited += time.perf_counter() - t0
            return not self._stopped
        t0 = time.perf_counter()
        try:
            while True:
                if not self._thread.is_alive():  # it failed or stopped: say which
                    self._raise()
                    return False
                try:
                    self._queue.put((_ITEM, item), timeout=_POLL)
                    return True
                except queue.Full:
                    continue
        finally:
            self.waited += time.perf_counter() - t0

    def finish(self) -> None:
        """Wait until every item put has been consumed (or `consume` stopped or failed); raise its failure."""
        if self.depth > 0:
            t0 = time.perf_counter()
            while self._thread.is_alive():
                try:
                    self._queue.put((_END, None), timeout=_POLL)
                    break
                except queue.Full:
                    continue
            while self._thread.is_alive():
                self._thread.join(_POLL)
            self.waited += time.perf_counter() - t0
        self._raise()

    def abort(self, timeout: float = 5.0) -> None:
        """Drop the items waiting and stop the thread (waiting up to `timeout` s for the item being consumed)."""
        if self.depth <= 0:
            return
        self._abort.set()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(_POLL)
