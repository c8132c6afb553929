"""A stage's peak RSS is what the process held while that stage ran, not a high-water mark so far."""

import time

from telemetry_assets.stage_clock import StageClock

BLOCK_MB = 300


def test_a_stage_shows_memory_it_freed_before_it_ended_and_the_next_stage_does_not():
    clock = StageClock()
    with clock.sampling_rss(every=0.01):
        with clock.stage("allocates"):
            block = b"x" * (BLOCK_MB << 20)  # written, so resident
            time.sleep(0.2)  # the sampler sees it; the stage's end will not
            del block
        with clock.stage("after"):
            time.sleep(0.05)
    assert clock.peak_rss_mb["allocates"] >= clock.peak_rss_mb["after"] + BLOCK_MB * 0.8
    assert clock.seconds["allocates"] >= 0.2 and clock.seconds["after"] >= 0.05
