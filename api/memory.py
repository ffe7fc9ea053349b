"""Make freed memory go back to the operating system, so that the server's RSS falls back after a burst
of large images instead of staying at its peak.

glibc's malloc serves allocations from 128 KiB up with mmap (returned to the OS on free), but it raises
that threshold to the size of each large block freed, up to 32 MiB: after the first few decoded images,
every array below 32 MiB comes from heaps that fragment and rarely shrink, one heap per thread that
ever allocated (up to 8 per core). Fixing the threshold at 1 MiB, and the heaps at 2, keeps the RSS
near what is in use. A few percent of speed is the price, on allocations this size. Other C libraries
(musl, macOS) are left as they are.
"""

import ctypes
import functools
import logging

logger = logging.getLogger("api")

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
MMAP_THRESHOLD = 1024 * 1024
TRIM_THRESHOLD = 4 * 1024 * 1024
ARENAS = 2


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, loaded once (the trimmer calls in every few seconds), with the two functions' signatures."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt")):
        return None
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return libc


def trim() -> bool:
    """Give the free pages inside the heaps back to the OS now (glibc's malloc_trim): what the settings
    below cannot, for the small blocks (a request body arrives in 64 KiB chunks) freed between ones
    still in use. Takes a few milliseconds; False where the C library is not glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def return_freed_memory() -> bool:
    """Set glibc's malloc as above; False where the C library is not glibc."""
    libc = _libc()
    if libc is None:
        return False
    done = all(
        libc.mallopt(option, value)
        for option, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (M_ARENA_MAX, ARENAS),
        )
    )
    if not done:
        logger.warning("mallopt refused a setting: freed memory may not return to the OS")
    return done
