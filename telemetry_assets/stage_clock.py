"""Seconds spent per named stage of a run, so a partition (and `telemetry bench`) can say where its
time went. Each `stage` adds its wall time to its name (do not nest stages) and records the
process's peak RSS when it ends: a high-water mark, so it only grows from stage to stage."""

import resource
from collections import Counter
from contextlib import contextmanager
from time import perf_counter


class StageClock:
    def __init__(self):
        self.seconds: Counter = Counter()
        self.peak_rss_mb: dict[str, int] = {}

    @contextmanager
    def stage(self, name: str):
        start = perf_counter()
        try:
            yield
        finally:
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

