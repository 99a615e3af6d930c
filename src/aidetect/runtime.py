"""Process-wide tuning of the C allocator for PyTorch on the CPU.

glibc's malloc serves allocations above its mmap threshold (128 KiB, rising dynamically to at
most 32 MiB) with fresh ``mmap`` calls and returns freed memory at the top of the heap to the
kernel above its trim threshold. A CNN pass allocates and frees activation tensors of tens of
MiB each time, so every pass paid page faults on freshly mapped, zeroed pages: on 2 cores, 75 %
of the Detector's time on 512 px photos was system time. Raising both thresholds to 1 GiB keeps
that memory in the process for reuse: measured (32 coco_sd photos, EfficientNet-Lite0, 9 tiles
each) 3.6 -> 7.6 img/s forward and 3.8 -> 11.9 img/s with Grad-CAM, peak RSS 2.3 -> 3.0 GB
(docs/inference.md). A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 1 << 30

_done = False
_lock = threading.Lock()


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when applied."""
    global _done
    with _lock:
        if _done:
            return True
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
            return False
        ok = bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD_BYTES))
        _done = ok
        return ok
