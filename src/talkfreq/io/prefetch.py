"""Producing the items of an iterable ahead of their consumer in a background thread (PyAV decoding releases the
GIL, so it overlaps the consumer's work), with errors and early closing handed across the thread boundary."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

POLL = 0.05  # seconds between checks of the stop flag while a queue is full or empty
END = object()  # a producer's last item


def put_until_stopped(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item`` into ``q``, waiting while it is full; False (not put) once ``stop`` is set."""
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL)
            return True
        except queue.Full:
            pass
    return False


def prefetched(items: Iterable[T], *, depth: int = 8) -> Iterator[T]:
    """``items``, produced in a background thread at most ``depth`` ahead of the consumer, so that producing (PyAV
    decoding, which releases the GIL) overlaps the consumer's work (the face-box pass's detection).

    Order and values are those of ``items``. An exception of the producer is re-raised here, the original object;
    closing this generator early (or an exception in the consumer) stops the producer within ``POLL`` seconds,
    closes its iterator in its own thread and joins it.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put_until_stopped(q, (True, item), stop):
                    return
            put_until_stopped(q, (True, END), stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put_until_stopped(q, (False, exc), stop)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="talkfreq-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = q.get()  # the producer always ends with END or an error unless stopped, and only we stop it
            if not ok:
                raise item
            if item is END:
                return
            yield item
    finally:
        stop.set()
        worker.join()
