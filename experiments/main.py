"""Continual pre-training with adaptive memory replay: every configured strategy at equal compute.

    python -m experiments.main --config=configs/quickstart.py --workdir=runs/quickstart
    python -m experiments.main --config=configs/quickstart.py --workdir=... --config.seeds='(0,)'

The command line lives in `amr/runner/cli.py` (installed as `amr-train`); this is the entry
point a clone uses. `python -m experiments.main --helpfull` lists every flag.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this clone's amr and configs

from amr.runner.cli import run  # noqa: E402

if __name__ == "__main__":
    run()
