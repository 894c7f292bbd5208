"""Continual pre-training with adaptive memory replay: every configured strategy at equal compute.

    python -m experiments.main --config=configs/quickstart.py --workdir=/tmp/amr_quickstart
    python -m experiments.main --config=configs/quickstart.py --workdir=... --config.seeds='(0,)'

Several processes (docs/LAUNCH.md): `--distributed` alone auto-detects the cluster (TPU pod
slices, SLURM); or give every process --coordinator=HOST:PORT --num_processes=N --process_id=i.

A workdir that holds checkpoints or finished runs is resumed, never overwritten.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/ from a checkout

from amr.analysis import report  # noqa: E402
from amr.runner.experiment import train_and_evaluate  # noqa: E402
from amr.train import distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a configs/*.py file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results, metrics, plots and checkpoints.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    False,
    "Join the JAX distributed runtime first (multi-host TPU pod slices, GPU clusters); "
    "without --coordinator the cluster is auto-detected.",
)
_COORDINATOR = flags.DEFINE_string("coordinator", None, "host:port of process 0's coordinator (implies --distributed).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (with --coordinator).")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index in [0, num_processes) (with --coordinator)."
)
_INIT_TIMEOUT = flags.DEFINE_integer("init_timeout", 300, "Seconds to wait for the coordinator and all processes.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    if _DISTRIBUTED.value or _COORDINATOR.value or _NUM_PROCESSES.value or _PROCESS_ID.value is not None:
        try:
            distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, _INIT_TIMEOUT.value)
        except (distributed.CoordinatorUnreachable, ValueError) as err:
            raise app.UsageError(str(err)) from err
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    if distributed.is_primary():
        print(report.summary_table(results))
        print(f"\nwrote {os.path.join(_WORKDIR.value, 'results.json')} and plots to {_WORKDIR.value}")


def run():
    """Console-script entry point (`amr-train`)."""
    app.run(main)


if __name__ == "__main__":
    run()
