"""``eventroll export minari``: a run's trajectories as a Minari dataset."""

from __future__ import annotations


from eventroll.cli.args import Parser, UsageError

HELP = """\
usage: eventroll export minari RUN_DIR --dataset-id NS/NAME-vN [--out DATASETS_ROOT]

Export the flat trajectories of a run (RUN_DIR/trajectories.h5) as a Minari
dataset that `minari.load_dataset` opens as it is. Aborted episodes are left
out and counted. The env spec takes the run's env, kwargs and step limit from
its event log.

options:
  --dataset-id ID   the dataset id, NAMESPACE/NAME-vVERSION (e.g. eventroll/cartpole-v0)
  --out DIR         the datasets root (default: Minari's own, MINARI_DATASETS_PATH
                    or ~/.minari/datasets)

Exit status: 0, or 2 on bad input.
"""


def command(args: list[str]) -> int:
    if not args or args[0] != "minari":
        raise UsageError("the only export format is minari: "
                         "eventroll export minari RUN_DIR --dataset-id NS/NAME-vN")
    parser = Parser("eventroll export minari")
    parser.add_argument("run_dir")
    parser.add_argument("--dataset-id", required=True)
    parser.add_argument("--out")
    options = parser.parse_args(args[1:])
    from eventroll.trajectories.minari import export_minari

    report = export_minari(options.run_dir, options.out, options.dataset_id)
    print(" ".join(f"{key}={value}" for key, value in report.items()))
    return 0
