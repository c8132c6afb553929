"""Seconds spent per named stage of a run, so a partition (and `telemetry bench`) can say where its
time went. Each `stage` adds its wall time to its name (do not nest stages) and records the
process's peak RSS when it ends: a high-water mark, so it only grows from stage to stage.

Stages run on several threads at once (ingest governs two chunks at a time): a stage's seconds then
add up every thread's time in it, so the stages can sum to more than the run's wall time."""

import resource
import threading
from collections import Counter
from contextlib import contextmanager
from time import perf_counter


class StageClock:
    def __init__(self):
        self.seconds: Counter = Counter()
        self.peak_rss_mb: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str):
        start = perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[name] += perf_counter() - start
                self.peak_rss_mb[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

    def timed(self, name: str, items):
        """Iterate `items`, counting the time spent producing each under `name`."""
        iterator, exhausted = iter(items), object()
        while True:
            with self.stage(name):
                item = next(iterator, exhausted)
            if item is exhausted:
                return
            yield item

