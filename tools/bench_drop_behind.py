#!/usr/bin/env python
"""What writing a recording costs the machine with and without drop-behind.

What it measures
----------------
One file of ``--megabytes`` MB is written the way the event log writes (``write_all``
of 256 KiB messages), with ``eventroll.files.DropBehind`` and without, alternating, for
``--repeats`` rounds; then ``fsync``, so that the writeback is inside the measure. Each
write is timed in CPU seconds of the whole machine (``/proc/stat``: user, system, irq;
the kernel's flusher threads included; another virtual machine's steal time is not),
and of this process.

``--files kept`` (the default) keeps every file until the end, as a user keeps their
recordings: the kernel must find fresh pages for each. ``--files deleted`` deletes each
file once measured, so that the next one is written into the pages just freed (what a
benchmark that removes its run directories sees).

How to run
----------
    python tools/bench_drop_behind.py                        # 700 MB, 3 rounds, files kept
    python tools/bench_drop_behind.py --files deleted --repeats 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from eventroll.files import DropBehind, write_all

MESSAGE = 1 << 18


def machine_cpu() -> float:
    """CPU seconds the machine spent busy since boot (not idle, iowait or steal)."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4] - ticks[7]) / os.sysconf("SC_CLK_TCK")


def write_file(path: str, megabytes: int, drop_behind: bool) -> tuple[float, float]:
    """Machine and process CPU seconds to write and fsync ``megabytes`` MB to ``path``."""
    message = os.urandom(MESSAGE)
    os.sync()
    machine, own = machine_cpu(), time.process_time()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        drop, size = DropBehind(fd), 0
        while size < megabytes * 1_000_000:
            size += write_all(fd, [message])
            if drop_behind:
                drop.wrote(size)
        os.fsync(fd)
    finally:
        os.close(fd)
    return machine_cpu() - machine, time.process_time() - own


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench_drop_behind.py", description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=700, help="MB a file (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (default: %(default)s)")
    parser.add_argument("--files", choices=("kept", "deleted"), default="kept",
                        help="keep every file to the end, or delete each once measured")
    parser.add_argument("--tmpdir", default=None, help="where to write (default: the system's)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="eventroll-bench-drop-behind-", dir=args.tmpdir)
    results: dict[str, list[tuple[float, float]]] = {"drop-behind": [], "plain": []}
    try:
        for round_ in range(args.repeats):
            for name in results:
                path = os.path.join(workdir, f"{name}-{round_}")
                results[name].append(write_file(path, args.megabytes, name == "drop-behind"))
                if args.files == "deleted":
                    os.unlink(path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{args.megabytes} MB a file, files {args.files}, median of {args.repeats} rounds")
    print("| writer | machine CPU s | process CPU s | rounds (machine) |")
    print("| --- | ---: | ---: | --- |")
    for name, runs in results.items():
        print(f"| {name} | {statistics.median(m for m, _ in runs):.2f} | "
              f"{statistics.median(p for _, p in runs):.2f} | "
              f"{', '.join(f'{m:.2f}' for m, _ in runs)} |")


if __name__ == "__main__":
    main()
