"""Give memory back to the operating system when a big piece of work ends.

A kernel that ran rounds in threads (in-process clients, the controller's IO and run
threads) keeps what they freed: glibc's malloc holds freed blocks in per-thread arenas
instead of returning them, so a finished notebook can hold hundreds of MiB it no longer
uses. On Binder, where every kernel a learner leaves running counts against one 2 GB
pod, that decides whether the course fits. ``malloc_trim(0)`` returns the free pages of
every arena; elsewhere (not glibc) this only collects garbage.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys


def release_memory() -> None:
    """Collect garbage, then return the heap's free pages to the system where libc can."""
    gc.collect()
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return
    trim(0)
