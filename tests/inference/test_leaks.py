"""200 repeated calls: no hook left on the model, no memory growth."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from aidetect.explain.cam import count_hooks
from aidetect.inference import Detector

MINI = Path(__file__).resolve().parents[1] / "data" / "cifake_mini"


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        import os

        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_no_hook_or_memory_growth_over_200_calls(detector: Detector) -> None:
    files = sorted((MINI / "ai").glob("*"))[:2]
    hooks0 = count_hooks(detector.model)
    for _ in range(20):  # warm-up: allocator pools, lazy inits
        detector.classify(files)
    gc.collect()
    rss0 = rss_bytes()
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    for i in range(200):
        verdicts = detector.classify(files, target="other" if i % 2 else "predicted")
        assert all(v.ok and v.cam is not None for v in verdicts)
        assert count_hooks(detector.model) == hooks0
    gc.collect()
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
    assert growth < 512 * 1024, f"python heap grew by {growth} bytes"
    assert rss_bytes() - rss0 < 32 * 1024 * 1024
    assert all(p.grad is None for p in detector.model.parameters())
