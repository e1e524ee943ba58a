"""Writing files: writev that resumes, drop-behind of the page cache a writer leaves, and
the removal of socket directories that killed runs left."""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import socket
import subprocess

import pytest

from eventroll.files import DropBehind, remove_stale_socket_directories, socket_directory, write_all

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


def _gone_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _socket_dir(parent, name, *, listening=False):
    """A directory like a run's, with one socket file; returned with the socket when
    ``listening`` (it must stay open)."""
    directory = parent / name
    directory.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(directory / "control"))
    if listening:
        server.listen()
        return directory, server
    server.close()  # the file stays, no one listens
    return directory, None


def test_only_socket_directories_of_gone_runs_are_removed(tmp_path):
    gone = _gone_pid()
    stale, _ = _socket_dir(tmp_path, f"eventroll-{gone}-abc")
    mine, _ = _socket_dir(tmp_path, f"eventroll-{os.getpid()}-abc")  # its driver lives
    served, server = _socket_dir(tmp_path, f"eventroll-{gone}-def", listening=True)
    unnamed, _ = _socket_dir(tmp_path, "eventroll-xyz")  # no pid in its name
    other, _ = _socket_dir(tmp_path, f"other-{gone}-abc")
    with server:
        assert remove_stale_socket_directories(str(tmp_path)) == [str(stale)]
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (mine, served, unnamed, other))


def test_a_new_socket_directory_names_its_driver_and_clears_stale_ones(tmp_path):
    stale, _ = _socket_dir(tmp_path, f"eventroll-{_gone_pid()}-abc")
    fresh = socket_directory(str(tmp_path))
    assert os.path.basename(fresh).startswith(f"eventroll-{os.getpid()}-")
    assert os.listdir(tmp_path) == [os.path.basename(fresh)]
    assert oct(os.stat(fresh).st_mode & 0o777) == "0o700"


def test_a_process_that_ended_unreaped_does_not_exist():
    """A zombie (ended, its parent has not reaped it) is not a live process: a run whose
    driver is one is over."""
    import time

    from eventroll.files import process_exists

    assert process_exists(os.getpid())
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while process_exists(pid):
            assert time.monotonic() < deadline, "an ended child still counts as a process"
            time.sleep(0.01)
    finally:
        os.waitpid(pid, 0)
    assert not process_exists(pid)
