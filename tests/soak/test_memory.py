"""A million-step run with every recorder, its memory sampled four times a second in every
process: peak memory must not grow with the run's length (run by hand: -m soak;
``SOAK_EPISODES=450000`` for ten million steps)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from eventroll import read_events

EPISODES = int(os.environ.get("SOAK_EPISODES", 45_000))  # 45,000: about 1,000,000 CartPole steps
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process in MiB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as file:
            return int(file.read().split()[1]) * PAGE / 2**20
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def process_name(pid: int) -> str:
    """What eventroll named the process (er-hub, er-worker-0, ...), "" once it is gone."""
    try:
        with open(f"/proc/{pid}/comm") as file:
            return file.read().strip()
    except OSError:
        return ""


def run_processes(driver: int) -> list[int]:
    done = subprocess.run(["ps", "--ppid", str(driver), "-o", "pid="], capture_output=True,
                          text=True)
    return [driver, *map(int, done.stdout.split())]


@pytest.mark.soak
def test_memory_does_not_grow_with_the_run(tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "eventroll.cli", "run", "runner=parallel", "runner.n_processes=2",
         f"runner.n_episodes={EPISODES}", "seeding.env_base_seed=1", "seeding.agent_base_seed=2",
         f"hydra.run.dir={run_dir}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples: dict[int, list[float]] = {}
    names: dict[int, str] = {}
    deadline = time.monotonic() + 600 * max(1, EPISODES // 45_000)
    while process.poll() is None and time.monotonic() < deadline:
        for pid in run_processes(process.pid):
            if (rss := rss_mib(pid)) is not None:
                samples.setdefault(pid, []).append(rss)
                names[pid] = process_name(pid) or names.get(pid, "")
        time.sleep(0.25)  # a million steps take 7 s on a fast machine: 28 samples
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    steps = sum(e.n for e in read_events(run_dir / "events.msgpack") if e.KIND == "step.batch")
    assert steps >= EPISODES * 20
    report, growing = [], []
    for pid, series in samples.items():
        if len(series) < 8:
            continue  # a short-lived process: nothing to compare
        quarter = len(series) // 4
        early, late = max(series[:quarter * 2]), max(series[-quarter:])
        report.append(f"pid {pid} ({names[pid]}): peak {max(series):.1f} MiB, first half "
                      f"{early:.1f}, last quarter {late:.1f}; "
                      + " ".join(f"{v:.0f}" for v in series))
        if late > early + 8:
            growing.append(report[-1])
    print("\n".join(report))
    assert report, "the run lasted long enough to sample"
    assert not growing, f"memory grows with the run: {growing}"
