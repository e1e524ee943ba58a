"""How eventroll's own processes allocate memory."""

from __future__ import annotations

import ctypes

# mallopt parameters of glibc's malloc (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest
TRIM_THRESHOLD = 64 << 20


def keep_freed_memory() -> None:
    """Have glibc's malloc reuse the memory of large buffers it freed instead of returning
    it to the kernel at once.

    Message bodies and arrays of a few hundred kB (image observations) are allocated and
    freed all the time. By default each of them is a fresh ``mmap`` whose pages fault in
    and are zeroed, then unmapped: 30 % of the event log's CPU in the 84x84 image
    benchmark went to page faults, ``brk`` and ``munmap``. Taking such buffers from the
    heap, and keeping up to ``TRIM_THRESHOLD`` free at its top, nearly halved the CPU of
    the recorders there. Memory stays what the largest moment needs, as before.

    For eventroll's own processes only (the command line, hub, recorders, workers): it
    changes the whole process. A no-op where malloc is not glibc's."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no mallopt here (macOS, Windows)
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
