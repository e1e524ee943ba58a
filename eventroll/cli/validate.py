"""``eventroll validate``: check an event log in full and list every problem."""

from __future__ import annotations


from eventroll.cli.args import Parser
from eventroll.errors import InputError

HELP = """\
usage: eventroll validate PATH [--max-problems N]

Check an event log (events.msgpack, or the one in a run directory) in full:

  * the header, and that every record decodes and matches its kind's JSON
    Schema (schemas/*.schema.json);
  * that seq runs 0, 1, 2, ... and each worker's wseq too;
  * that every episode.start has an episode.end (and every end a start), with
    step.batch records whose t0/n are contiguous and sum to the length;
  * that run.start is the first record and run.end the last, and that the
    counts of run.end (episodes, aborted, steps) and of worker.end (episodes,
    last_wseq) equal what the log holds.

A truncated tail and undecodable bytes are problems too, reported with their
byte offsets; after undecodable bytes, reading resumes at the next record that
decodes, and the problem says how many bytes were skipped.

Prints each problem on one line ("byte OFFSET, seq SEQ: what is wrong"), then
a verdict.

options:
  --max-problems N   print at most N problems (default 100; 0 prints all)

Examples:
  eventroll validate outputs/2026-11-21/10-00-00
  eventroll validate run/events.msgpack --max-problems 0

Exit status: 0 when valid, 1 when problems were found, 2 on bad input.
"""


def command(args: list[str]) -> int:
    parser = Parser("eventroll validate")
    parser.add_argument("path", metavar="PATH")
    parser.add_argument("--max-problems", type=int, default=100)
    options = parser.parse_args(args)
    from eventroll.validation import validate_event_log

    try:
        report = validate_event_log(options.path)
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename or options.path}: {exc.strerror or exc}; "
                         "pass a readable event log or run directory") from None
    shown = report.problems if options.max_problems <= 0 else report.problems[:options.max_problems]
    for problem in shown:
        print(problem)
    if len(shown) < len(report.problems):
        hidden = len(report.problems) - len(shown)
        print(f"... and {hidden} more problem{'s' * (hidden != 1)} (--max-problems 0 prints all)")
    print(report.verdict())
    return 0 if report.valid else 1
