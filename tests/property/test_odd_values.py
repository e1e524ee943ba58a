"""The offline commands on logs whose records hold odd values: `replay`, `validate`,
`inspect`, `tail`, `watch` (of a finished run) and `rerun` each finish, or stop with a one-line error (an EventrollError, as
the command line prints it), and never end in a traceback."""

from __future__ import annotations

import contextlib
import importlib
import io
import math
import os
import pytest

from eventroll import ParallelRunner, codec
from eventroll.cli import COMMANDS
from eventroll.cli.args import UsageError
from eventroll.errors import EventrollError
from eventroll.recorders.eventlog import EventLogReader

# None, beyond int64 (msgpack carries ints up to 2**64), -1 (the driver's worker id), NaN,
# a value of the wrong kind (a longer list, with "x", [1, "a"] and True, found nothing
# more and takes twice as long)
ODD = [None, 2**63 + 1, -1, math.nan, {"a": 1}]
KINDS = ("run.start", "worker.start", "episode.start", "step.batch", "episode.end",
         "worker.end", "run.end")


@pytest.fixture(scope="module")
def small_log(tmp_path_factory) -> tuple[dict, list[dict]]:
    """A parallel run of four short CartPole episodes: its log's header and records."""
    run_dir = str(tmp_path_factory.mktemp("odd") / "run")
    ParallelRunner(n_episodes=4, n_processes=2, max_episode_steps=5, console=None,
                   env_base_seed=1, agent_base_seed=2).run_with("CartPole-v1", run_dir=run_dir)
    reader = EventLogReader(os.path.join(run_dir, "events.msgpack"), array_kinds=frozenset())
    records = list(reader.records())
    return reader.header, records


def run_command(name: str, args: list[str]) -> str | None:
    """Run one command in this process; the exception that would be a traceback, or None."""
    command = importlib.import_module(f"eventroll.cli.{COMMANDS[name][0]}").command
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            command(args)
    except (EventrollError, OSError, UsageError):  # one line on the command line
        return None
    except Exception as exc:  # noqa: BLE001 - what the test is looking for
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.mark.parametrize("kind", KINDS)
def test_no_odd_value_ends_in_a_traceback(small_log, tmp_path, kind):
    """Each field of every record of ``kind``, set to each odd value in turn (one field at
    a time), and each command run on the log."""
    header, records = small_log
    fields = [key for key in next(r for r in records if r["kind"] == kind) if key != "kind"]
    failures = []
    for field in fields:
        for value in ODD:
            case = tmp_path / f"{field}-{ODD.index(value)}"
            case.mkdir()
            with open(case / "events.msgpack", "wb") as file:
                file.write(codec.encode(header))
                for record in records:
                    changed = {**record, field: value} if record["kind"] == kind else record
                    file.write(codec.encode(codec.decoded(changed)))
            for name, args in (("replay", [str(case), "--out", str(case / "replay")]),
                               ("validate", [str(case)]),
                               ("inspect", [str(case), "--no-plot"]),
                               ("tail", [str(case)]),
                               ("watch", [str(case)]),
                               ("rerun", [str(case)])):
                failure = run_command(name, args)
                if failure:
                    failures.append(f"{name}, {kind}.{field} = {value!r}: {failure}")
    assert failures == []


def test_the_harness_tells_a_traceback_from_a_one_line_error(monkeypatch):
    """What the check above counts as a failure: any exception but the command line's own."""
    module = importlib.import_module("eventroll.cli.validate")

    def raises(exc: Exception):
        def command(args: list[str]) -> int:
            raise exc
        return command

    monkeypatch.setattr(module, "command", raises(ZeroDivisionError("division by zero")))
    assert run_command("validate", []) == "ZeroDivisionError: division by zero"
    monkeypatch.setattr(module, "command", raises(EventrollError("bad input")))
    assert run_command("validate", []) is None
