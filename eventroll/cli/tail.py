"""``eventroll tail``: a run's events as JSON lines, filtered, optionally followed live."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from eventroll.cli.args import Parser, follow_help, follow_setup

HELP = """\
usage: eventroll tail RUN_DIR [--follow] [--new] [--kind KIND ...] [--episode N ...]
                      [--worker W ...] [--max-values N] [--nice idle|N]
                      [--server-key FILE --client-key FILE]

Print a run's events as JSON lines (one map per event, with its seq), in order:
every event recorded so far, then, with --follow, each new one as the run goes
on, until the run ends (or Ctrl-C). Works on a running and on a finished run;
the run directory is all it needs.

options:
  -f, --follow      keep printing new events until the run ends
  --new             skip what was recorded before now (implies --follow)
  --kind KIND       only events of this kind (repeatable): run.start run.end
                    worker.start worker.end worker.error episode.start
                    step.batch episode.end episode.lost custom
  --episode N       only events of episode N (repeatable)
  --worker W        only events of worker W (repeatable; -1 is the driver)
  --max-values N    numpy arrays of more than N values print as their dtype and
                    shape only (default 64)
{follow}

Examples:
  eventroll tail outputs/2026-11-21/10-00-00 --kind episode.end
  eventroll tail RUN_DIR --follow --kind worker.error
  eventroll tail RUN_DIR --episode 3 | jq .reward

Exit status: 0, or 2 on bad input.
""".format(follow=follow_help(20))


def json_value(value: Any, max_values: int) -> Any:
    """A JSON-able view of an event field: small numpy arrays as lists, larger ones as
    ``{"dtype", "shape"}``, numpy scalars as numbers, bytes as their size."""
    if isinstance(value, np.ndarray):
        if value.size > max_values or value.dtype.kind in "SUc":
            return {"dtype": value.dtype.str, "shape": list(value.shape)}
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item() if value.dtype.kind not in "SUc" else str(value)
    if isinstance(value, bytes):
        return {"bytes": len(value)}
    if isinstance(value, dict):
        return {str(k): json_value(v, max_values) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v, max_values) for v in value]
    return value


def _parser() -> Parser:
    parser = Parser("eventroll tail")
    parser.add_argument("run_dir")
    parser.add_argument("-f", "--follow", action="store_true")
    parser.add_argument("--new", action="store_true")
    parser.add_argument("--kind", action="append")
    parser.add_argument("--episode", action="append", type=int)
    parser.add_argument("--worker", action="append", type=int)
    parser.add_argument("--max-values", type=int, default=64)
    parser.add_follow_options()
    return parser


def command(args: list[str]) -> int:
    options = _parser().parse_args(args)
    curve = follow_setup(options)
    from eventroll.live import subscribe

    episodes = set(options.episode or ())
    workers = set(options.worker or ())
    try:
        for event in subscribe(options.run_dir, options.kind, from_start=not options.new,
                               follow=options.follow or options.new, curve=curve):
            if episodes and getattr(event, "episode", None) not in episodes:
                continue
            if workers and event.worker not in workers:
                continue
            record = {"seq": event.seq, **event.to_record()}
            print(json.dumps(json_value(record, options.max_values)), flush=True)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `eventroll tail ... | head`
        sys.stderr.close()
    return 0
