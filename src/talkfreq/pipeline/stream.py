"""The three-stage batch loop of the streaming pipelines: produce (decode + crop) -> compute (the networks) ->
consume (paste + encode), with the two CPU sides overlapped with the networks.

With ``overlap`` (ours; the point is that a GPU never waits for the CPU): batch k+1 is decoded and cropped in a
producer thread and batch k-1 pasted and encoded in a consumer thread while the calling thread runs the networks on
batch k; PyAV, OpenCV and torch release the GIL, so the three really run at once. On a CPU the sides share the
cores: measured on the 2-core development machine (``benchmarks/RESULTS.md``) it gains 10-30 % with one torch
thread and is neutral when torch already uses both cores. Queues between the sides hold at most ``depth`` batches
each, so at most ``2 depth + 3`` batches of frames are alive whatever the video's length. Every side handles its
batches in order, one at a time, so the output is bit-identical to the sequential loop (``overlap=False``).

Errors: the first exception of any side stops the others (threads blocked on a full or empty queue wake within
``POLL`` seconds), all threads are joined, and the exception object itself is re-raised in the caller, so its type
and message are the original. The producer's iterator is closed in its own thread (a generator's ``finally``, e.g.
removing a frame cache, runs there). Nothing is written after an error, and the caller's atomic writers remove their
temporary files when the exception reaches them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from talkfreq.io.prefetch import END, POLL, put_until_stopped

B = TypeVar("B")
R = TypeVar("R")

T = TypeVar("T")


def batched(items: Iterable[T], n: int) -> Iterator[list[T]]:
    """Lists of ``n`` consecutive items (the last one shorter); ``itertools.batched`` from Python 3.12."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def run_stream(batches: Iterable[B], compute: Callable[[B], R], consume: Callable[[R], Any], *, overlap: bool,
               depth: int = 2) -> None:
    """``consume(compute(batch))`` for every batch of ``batches``, in order; see the module docstring.

    ``compute`` runs in the calling thread (the one that owns the device and torch's thread settings).
    """
    if not overlap:
        for batch in batches:
            consume(compute(batch))
        return

    stop = threading.Event()
    errors: list[BaseException] = []
    to_compute: queue.Queue = queue.Queue(maxsize=depth)
    to_consume: queue.Queue = queue.Queue(maxsize=depth)

    def put(q: queue.Queue, item: Any) -> bool:
        return put_until_stopped(q, item, stop)

    def get(q: queue.Queue) -> Any:
        while not stop.is_set():
            try:
                return q.get(timeout=POLL)
            except queue.Empty:
                pass
        return END

    def fail(exc: BaseException) -> None:
        errors.append(exc)
        stop.set()

    def produce() -> None:
        it = iter(batches)
        try:
            for batch in it:
                if not put(to_compute, batch):
                    return
            put(to_compute, END)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            fail(exc)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def drain() -> None:
        try:
            while (item := get(to_consume)) is not END:
                consume(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            fail(exc)

    workers = [threading.Thread(target=produce, name="talkfreq-produce", daemon=True),
               threading.Thread(target=drain, name="talkfreq-consume", daemon=True)]
    for w in workers:
        w.start()
    try:
        while (batch := get(to_compute)) is not END:
            if not put(to_consume, compute(batch)):
                break
        put(to_consume, END)
    except BaseException as exc:
        fail(exc)
    finally:
        for w in workers:
            w.join()
    if errors:
        raise errors[0]
