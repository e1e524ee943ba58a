"""How eventroll's own processes allocate memory."""

from __future__ import annotations

import ctypes
import gc

# mallopt parameters of glibc's malloc (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest
TRIM_THRESHOLD = 64 << 20
# the cyclic collector's thresholds (Python's defaults: 700, 10, 10)
GC_THRESHOLDS = (100_000, 50, 100)


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


def collect_rarely() -> None:
    """Run Python's cyclic garbage collector rarely, and never over what exists now.

    A recorder decodes about 135,000 maps a million CartPole steps and makes an object
    or two of each: every 700 of them started a collection, which traversed the objects
    the process inherited (Hydra's, h5py's, numpy's): 16 % of the trajectories
    recorder's CPU went to the collector. :func:`gc.freeze` moves every object there
    is to a generation never collected (their memory still goes when their last
    reference does: only cycles among them stay); collections then start after
    ``GC_THRESHOLDS[0]`` new containers. eventroll's hot paths make no reference
    cycles, so memory is what it was.

    For eventroll's processes that run no user code (the recorders, and the commands that
    read recordings): it changes the whole interpreter, and an env or a policy may make
    reference cycles that hold large buffers, which a rare collection would keep longer."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
