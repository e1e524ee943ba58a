"""``eventroll replay``: rebuild a run's trajectories and statistics from its event log."""

from __future__ import annotations

import os
import sys

from eventroll.cli.args import Parser

HELP = """\
usage: eventroll replay RUN_DIR [--out DIR] [--layout flat|minari]

Rebuild the trajectories (trajectories.h5, or a Minari dataset) and the
statistics (stats.json) of a run from its event log alone, with the recording
options the run had, and report the rate. The result equals what the run
recorded live; the run's own files are never touched.

options:
  --out DIR        where to write (default RUN_DIR/replay; must not hold them yet)
  --layout L       flat (default) or minari

Exit status: 0, 1 if a recorder reported errors, 2 on bad input.
"""


def command(args: list[str]) -> int:
    parser = Parser("eventroll replay")
    parser.add_argument("run_dir")
    parser.add_argument("--out")
    parser.add_argument("--layout", default="flat", choices=("flat", "minari"))
    options = parser.parse_args(args)
    from eventroll.recording import replay_run

    out = options.out or os.path.join(options.run_dir, "replay")
    report = replay_run(options.run_dir, out, layout=options.layout)
    rate = report["steps"] / max(report["wall_time"], 1e-9)
    print(f"replayed {report['events']:,} events, {report['steps']:,} steps in "
          f"{report['wall_time']:.2f} s ({rate:,.0f} steps/s) into {out}")
    errors = [f"{name}: {error}" for name, recorder in report["recorders"].items()
              for error in recorder.get("errors", [])]
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0
