"""Seconds spent per named stage of a run, and the memory each stage took, so a partition (and
`telemetry bench`) can say where its time and memory went. Each `stage` adds its wall time to its
name (do not nest stages).

Stages run on several threads at once (ingest governs two events of its chunks at a time): a
stage's seconds then add up every thread's time in it, so the stages can sum to more than the run's
wall time.

A stage's peak RSS is the highest resident set size seen while it ran: measured when it starts and
ends, and, inside `sampling_rss`, every 50 ms. A sample counts for every stage running at
that moment, so stages running side by side share their peaks."""

import resource
import sys
import threading
from collections import Counter
from contextlib import contextmanager
from time import perf_counter

import psutil

RSS_SAMPLE_SECONDS = 0.05


def current_rss_mb() -> int:
    return psutil.Process().memory_info().rss >> 20


def peak_rss_mb() -> int:
    """The process's high-water mark so far (the kernel's, not sampled; in KiB on Linux, bytes on macOS)."""
    high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return high_water >> 20 if sys.platform == "darwin" else high_water >> 10


class StageClock:
    def __init__(self):
        self.seconds: Counter = Counter()
        self.peak_rss_mb: dict[str, int] = {}
        self._running: Counter = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str):
        with self._lock:
            self._running[name] += 1
        self._note_rss()
        start = perf_counter()
        try:
            yield
        finally:
            spent = perf_counter() - start
            self._note_rss()
            with self._lock:
                self.seconds[name] += spent
                self._running[name] -= 1

    def timed(self, name: str, items):
        """Iterate `items`, counting the time spent producing each under `name`, on the thread that
        iterates. Closing this closes `items`, so a reader stopped early lets go of what it reads."""
        iterator, exhausted = iter(items), object()
        try:
            while True:
                with self.stage(name):
                    item = next(iterator, exhausted)
                if item is exhausted:
                    return
                yield item
        finally:
            if hasattr(iterator, "close"):
                iterator.close()

    @contextmanager
    def sampling_rss(self, every: float = RSS_SAMPLE_SECONDS):
        """Inside, a background thread samples RSS every `every` seconds into the running stages'
        peaks, so a stage that frees what it allocated before it ends still shows it."""
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(every):
                self._note_rss()

        sampler = threading.Thread(target=sample, daemon=True, name="rss-sampler")
        sampler.start()
        try:
            yield
        finally:
            stop.set()
            sampler.join()

    def _note_rss(self) -> None:
        rss = current_rss_mb()
        with self._lock:
            for name, running in self._running.items():
                if running:
                    self.peak_rss_mb[name] = max(self.peak_rss_mb.get(name, 0), rss)
