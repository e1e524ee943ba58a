"""Writing files so that a crash never leaves a half-written one; naming a process; the
run's socket directory."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from typing import IO, Any


IOV_MAX = 1024  # buffers one writev takes (Linux's UIO_MAXIOV)


def write_all(fd: int, parts: list[bytes | memoryview]) -> int:
    """Write ``parts`` (bytes, or byte-format memoryviews) one after the other to ``fd``
    with writev: the kernel copies them from where they are; return how many bytes that
    was. Resumes after a short write; an error (a full disk, a file size limit) raises
    OSError."""
    parts, first, total = list(parts), 0, 0
    while first < len(parts):
        written = os.writev(fd, parts[first:first + IOV_MAX])
        if not written:
            raise OSError(errno.EIO, f"writev wrote nothing to file descriptor {fd}")
        total += written
        while first < len(parts) and written >= len(parts[first]):
            written -= len(parts[first])
            first += 1
        if written:  # a short write: the rest of this part comes next
            parts[first] = parts[first][written:]
    return total


class DropBehind:
    """Hands the kernel back the page cache of what a streaming writer wrote more than
    ``KEEP`` bytes before its end ("drop-behind"): call :meth:`wrote` with the file's
    size as it grows. The data is untouched: ``posix_fadvise(DONTNEED)`` starts the
    writeback of dirty pages and drops clean ones only; a reader of the old part reads
    it from disk. Why: writing into fresh pages costs the kernel up to six times what
    writing into recycled ones does on a virtual machine whose host takes idle memory
    back (700 MB while earlier files stay: 1.07 to 2.65 s of CPU against 0.36;
    ``tools/bench_drop_behind.py``), and a recorder writing gigabytes should not push
    everything else out of the cache. The last ``KEEP`` bytes stay cached for a
    follower reading the tail."""

    KEEP = 16 << 20
    EVERY = 4 << 20

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._next = self.KEEP + self.EVERY if hasattr(os, "posix_fadvise") else float("inf")

    def wrote(self, size: int) -> None:
        """The file now holds ``size`` bytes."""
        if size < self._next:
            return
        try:
            os.posix_fadvise(self._fd, 0, size - self.KEEP, os.POSIX_FADV_DONTNEED)
        except OSError:  # not a file the kernel caches this way: nothing to hand back
            self._next = float("inf")
            return
        self._next = size + self.EVERY


def write_atomic(path: str, text: str, *, durable: bool = True) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one
    (:func:`replacing`)."""
    with replacing(path, durable=durable) as file:
        file.write(text)


@contextlib.contextmanager
def replacing(path: str, *, binary: bool = False, durable: bool = True) -> Iterator[IO[Any]]:
    """A temporary file in ``path``'s directory, renamed over ``path`` once written
    whole (removed if the writing fails): readers see the old file or the whole new
    one. ``durable`` also fsyncs the file and the directory (skip it for files
    rewritten many times a second)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                     suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})
                       ) as file:
            yield file
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    if durable:
        _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename durable (where the platform lets a directory be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def name_process(name: str) -> None:
    """Show a process of a run by its role in ``ps -o comm`` and ``top`` (Linux: the
    15 characters of /proc/self/comm), ``eventroll-`` shortened to ``er-``:
    ``er-hub``, ``er-eventlog``, ``er-trajectories`` (with the stats), ``er-worker-0``."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name.replace("eventroll-", "er-", 1)[:15])
    except OSError:
        pass  # not Linux: the name is a nicety


SOCKET_DIR_PREFIX = "eventroll-"


def socket_directory(parent: str | None = None) -> str:
    """A new private directory for a run's sockets, ``eventroll-<driver pid>-<random>`` in
    ``parent`` (the temporary directory). The run removes it when it closes; a driver killed
    outright cannot, so the directories of drivers that no longer exist are removed first."""
    parent = tempfile.gettempdir() if parent is None else parent
    remove_stale_socket_directories(parent)
    return tempfile.mkdtemp(prefix=f"{SOCKET_DIR_PREFIX}{os.getpid()}-", dir=parent)


def remove_stale_socket_directories(parent: str) -> list[str]:
    """Remove this user's socket directories in ``parent`` whose driver process is gone and
    whose sockets no one listens on any more; return their paths. A directory whose driver
    or hub may still live (or whose name carries no pid) is left alone."""
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        pid = _driver_pid(entry.name)
        if pid is None or process_exists(pid):
            continue
        try:
            if (not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != os.getuid()
                    or _listened_on(entry.path)):
                continue
            shutil.rmtree(entry.path)
        except OSError:
            continue  # removed meanwhile, or not ours to remove
        removed.append(entry.path)
    return removed


def _driver_pid(name: str) -> int | None:
    if not name.startswith(SOCKET_DIR_PREFIX):
        return None
    pid, dash, _ = name[len(SOCKET_DIR_PREFIX):].partition("-")
    return int(pid) if dash and pid.isdigit() and int(pid) > 0 else None


def _listened_on(directory: str) -> bool:
    """Whether a process still accepts connections on a socket in ``directory`` (a driver
    in another pid namespace, sharing the temporary directory, looks gone by its pid)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    for name in names:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(os.path.join(directory, name))
            except (ConnectionRefusedError, FileNotFoundError):
                continue  # a socket file no one listens on
            except OSError as exc:
                if exc.errno in (errno.ENOTSOCK, errno.EACCES, errno.EISDIR):
                    continue  # not a socket
                return True  # busy (a full backlog, a timeout): someone listens
            return True
    return False


def process_exists(pid: int) -> bool:
    """Whether process ``pid`` is there (another user's too) and has not ended: a process
    that ended and that its parent has not reaped yet (a zombie) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rpartition(b")")[2].split()[:1] != [b"Z"]
    except OSError:  # the process went meanwhile, or this system has no /proc
        return not os.path.isdir("/proc")

