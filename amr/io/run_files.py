"""Where a sweep keeps one finished run: `<workdir>/runs/<strategy>_seed<k>.json` (its wall time in a
`.seconds` file beside it) and, while it trains, its checkpoints under `<workdir>/ckpt/<strategy>_seed<k>`.

The run writer (`amr.runner.experiment`), the statistics that read the runs back (`amr.analysis.stats`) and
the sweep workers that collect them (`amr.runner.sweep_workers`) share these names through this module.
"""

from __future__ import annotations

import os
import re

RUNS_DIR = "runs"
RUN_FILE_PATTERN = re.compile(r".+_seed\d+\.json")  # a finished run file's basename
SECONDS_SUFFIX = ".seconds"


def run_name(strategy: str, seed: int) -> str:
    return f"{strategy}_seed{seed}"


def run_file(workdir: str, strategy: str, seed: int) -> str:
    """The finished run's JSON: `<workdir>/runs/<strategy>_seed<seed>.json`."""
    return os.path.join(workdir, RUNS_DIR, run_name(strategy, seed) + ".json")


def checkpoint_dir(workdir: str, strategy: str, seed: int) -> str:
    """The run's checkpoints while it trains: `<workdir>/ckpt/<strategy>_seed<seed>`."""
    return os.path.join(workdir, "ckpt", run_name(strategy, seed))
