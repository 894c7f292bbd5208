"""Continual pre-training with adaptive memory replay: every configured strategy at equal compute.

    python -m experiments.main --config=configs/quickstart.py --workdir=/tmp/amr_quickstart
    python -m experiments.main --config=configs/quickstart.py --workdir=... --config.seeds='(0,)'

A workdir that holds checkpoints or finished runs is resumed, never overwritten.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/ from a checkout

from amr import report  # noqa: E402
from amr.experiment import train_and_evaluate  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a configs/*.py file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results, metrics, plots and checkpoints.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() first (multi-host TPU pod slices and GPU clusters).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    if _DISTRIBUTED.value:
        import jax  # pylint: disable=g-import-not-at-top

        jax.distributed.initialize()
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    print(report.summary_table(results))
    print(f"\nwrote {os.path.join(_WORKDIR.value, 'results.json')} and plots to {_WORKDIR.value}")


def run():
    """Console-script entry point (`amr-train`)."""
    app.run(main)


if __name__ == "__main__":
    run()
