"""``eventroll render``: render a recorded episode to an animated GIF."""

from __future__ import annotations

import os
import sys

from eventroll.cli.args import Parser
from eventroll.errors import ConfigError, EventrollError, InputError

HELP = """\
usage: eventroll render RUN_DIR --episode N [--out FILE.gif] [--fps F]

Render a recorded episode to an animated GIF: the episode is re-executed (see
`eventroll rerun --help`) in the run's env built with render_mode="rgb_array",
one frame after the reset and one after each step. Identical consecutive frames
are merged, their delays summed. Should the re-execution differ from the
recording, the GIF shows the re-execution and a note says where it differed.

arguments:
  RUN_DIR          a run directory (with events.msgpack) or an event log file
  --episode N      the episode to render
  --out FILE.gif   the GIF to write (default: RUN_DIR/episode-N.gif)
  --fps F          frames per second, at most 50 (default: the env's render_fps, or 30)

The env must render rgb_array images (Gymnasium's classic-control envs need
pygame: pip install 'eventroll[render]').

Examples:
  eventroll render out/run1 --episode 0
  eventroll render out/run1 --episode 3 --out cartpole.gif --fps 25

Exit status: 0 when the GIF was written, 1 when rendering failed, 2 on bad input.
"""


def parser() -> Parser:
    result = Parser("eventroll render")
    result.add_argument("run_dir")
    result.add_argument("--episode", type=int, required=True)
    result.add_argument("--out")
    result.add_argument("--fps", type=float)
    return result


def default_out(run_dir: str, episode: int) -> str:
    directory = run_dir if os.path.isdir(run_dir) else os.path.dirname(run_dir)
    return os.path.join(directory, f"episode-{episode}.gif")


def command(args: list[str]) -> int:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # keep stdout to our own lines
    from eventroll.rendering import render_episode

    options = parser().parse_args(args)
    out = options.out or default_out(options.run_dir, options.episode)
    try:
        rendered = render_episode(options.run_dir, options.episode, out, options.fps)
    except EventrollError as exc:
        if isinstance(exc, (ConfigError, InputError)):
            raise  # bad input: main says so, exit 2
        print(f"eventroll render: error: {exc}", file=sys.stderr)
        return 1
    width, height = rendered.size
    print(f"wrote {rendered.path}: episode {rendered.episode}, {rendered.frames} frames, "
          f"{width}x{height}, {rendered.fps:g} fps, {os.path.getsize(rendered.path):,} bytes")
    if rendered.mismatches:
        where = "the reset" if rendered.step is None else f"step {rendered.step}"
        print(f"note: the re-execution differs from the recording at {where}: "
              f"{'; '.join(map(str, rendered.mismatches))}", file=sys.stderr)
    return 0
