"""glibc's allocator told to keep freed memory: work that frees and allocates the same big blocks over
and over (batches of inference, the converter's ranges) then reuses them instead of mapping fresh pages,
each of which page-faults.

    from lib.util.memory import keep_freed_memory
    keep_freed_memory()                          # inference: blocks up to 64 MB from the heap, 512 MB kept
    keep_freed_memory(1 << 30, 1 << 30)          # a converter worker: its temporaries are larger
"""

from __future__ import annotations

import ctypes
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters


@functools.cache  # once per process (and setting)
def keep_freed_memory(mmap_threshold: int = 64 << 20, trim_threshold: int = 512 << 20) -> bool:
    """Serve allocations up to `mmap_threshold` bytes from the heap and give memory back to the system
    only above `trim_threshold` free. False where the C library has no mallopt (not glibc)."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return bool(mallopt and mallopt(M_MMAP_THRESHOLD, mmap_threshold) and mallopt(M_TRIM_THRESHOLD, trim_threshold))
