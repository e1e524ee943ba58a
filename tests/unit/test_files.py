"""Writing files: writev that resumes, and drop-behind of the page cache a writer leaves."""

from __future__ import annotations

import ctypes
import mmap
import os
import platform

import pytest

from eventroll.files import DropBehind, write_all

PAGE = mmap.PAGESIZE
MiB = 1 << 20


def test_write_all_writes_every_part_and_says_how_much(tmp_path):
    parts = [b"a" * 10, memoryview(b"0123456789")[2:7], b"", bytes(range(256)) * 300]
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        assert write_all(fd, parts) == sum(len(part) for part in parts)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"".join(parts)


def resident_pages(path: str) -> list[bool]:
    """Which pages of ``path`` are in the page cache: mincore(2) over a mapping of it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            vector = ctypes.create_string_buffer((size + PAGE - 1) // PAGE)
            if libc.mincore(address, size, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            return [byte & 1 == 1 for byte in vector.raw]
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


@pytest.mark.skipif(platform.system() != "Linux", reason="reads the page cache with mincore")
def test_drop_behind_hands_back_what_was_written_before_the_last_keep_bytes(tmp_path):
    """Once written to disk, the pages before the last KEEP bytes leave the cache at the
    next call; the last KEEP bytes stay; the file's bytes are all there."""
    path = str(tmp_path / "stream")
    chunk = bytes(range(256)) * (MiB // 256)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        drop = DropBehind(fd)
        size = 0
        while size < DropBehind.KEEP + 3 * DropBehind.EVERY:
            size += write_all(fd, [chunk])
            drop.wrote(size)
        os.fsync(fd)  # clean pages: a call drops them now, instead of starting their writeback
        size += write_all(fd, [chunk] * (DropBehind.EVERY // MiB))
        drop.wrote(size)
    finally:
        os.close(fd)
    pages = resident_pages(path)
    kept = DropBehind.KEEP // PAGE
    assert not any(pages[:len(pages) - kept - DropBehind.EVERY // PAGE])
    assert all(pages[len(pages) - kept:])
    with open(path, "rb") as file:
        assert all(file.read(MiB) == chunk for _ in range(size // MiB))
