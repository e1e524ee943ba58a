"""``eventroll replay``: rebuild a run's trajectories and statistics from its event log."""

from __future__ import annotations

import argparse
import os
import sys

from eventroll.cli.args import Parser

HELP = """\
usage: eventroll replay RUN_DIR [--out DIR] [--layout flat|minari] [--parts N]

Rebuild the trajectories (trajectories.h5, or a Minari dataset) and the
statistics (stats.json) of a run from its event log alone, with the recording
options the run had, and report the rate. The result equals what the run
recorded live; the run's own files are never touched.

options:
  --out DIR        where to write (default RUN_DIR/replay; must not hold them yet)
  --layout L       flat (default) or minari
  --parts N        replay the log in N processes, cut at records, and join their
                   results (default: one a core for a log of 8 MiB or more, 96 MiB
                   or more if it is mostly packed episodes; 1: one process). Logs the parts cannot join (custom statistics, the
                   minari layout, an episode longer than the parts' overlap) are
                   replayed whole, with the same result.

Exit status: 0, 1 if a recorder reported errors, 2 on bad input.
"""


def command(args: list[str]) -> int:
    parser = Parser("eventroll replay")
    parser.add_argument("run_dir")
    parser.add_argument("--out")
    parser.add_argument("--layout", default="flat", choices=("flat", "minari"))
    parser.add_argument("--parts", type=_parts)
    options = parser.parse_args(args)
    from eventroll.recording import replay_run

    out = options.out or os.path.join(options.run_dir, "replay")
    report = replay_run(options.run_dir, out, layout=options.layout, parts=options.parts)
    rate = report["steps"] / max(report["wall_time"], 1e-9)
    processes = "1 process" if report["parts"] == 1 else f"{report['parts']} processes"
    print(f"replayed {report['events']:,} events, {report['steps']:,} steps in "
          f"{report['wall_time']:.2f} s ({rate:,.0f} steps/s, {processes}) into {out}")
    errors = [f"{name}: {error}" for name, recorder in report["recorders"].items()
              for error in recorder.get("errors", [])]
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


def _parts(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"takes a number of processes from 1 to 64, got {text!r}")
    return int(text)
