"""The trainer's command line: every configured strategy at equal compute, on one config.

    amr-train --config=configs/quickstart.py --workdir=runs/quickstart
    python -m experiments.main --config=configs/quickstart.py --workdir=... --config.seeds='(0,)'

`--config` is a path to a config file, from any working directory; a config inside a package
(`configs/quickstart.py` does `from configs.base import ...`) finds its siblings.

Several processes (docs/LAUNCH.md): `--distributed` alone auto-detects the cluster (TPU pod
slices, SLURM); or give every process --coordinator=HOST:PORT --num_processes=N --process_id=i.

A workdir that holds checkpoints or finished runs is resumed, never overwritten.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from amr.analysis import report
from amr.runner import compile_cache
from amr.runner.experiment import train_and_evaluate
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
_COMPILE_CACHE = flags.DEFINE_string(
    "compile_cache",
    compile_cache.AUTO,
    "Persistent XLA compilation cache: 'auto' = <workdir>/compile_cache, '' = JAX's own setting, or a directory. "
    "A cache set through JAX_COMPILATION_CACHE_DIR wins.",
)
flags.mark_flags_as_required(["config", "workdir"])


def config_path(argv: list[str]) -> str | None:
    """The file named by `--config=PATH[:ARGS]` or `--config PATH[:ARGS]` in `argv` (None without one)."""
    for i, arg in enumerate(argv):
        for prefix in ("--config=", "-config="):
            if arg.startswith(prefix):
                return arg[len(prefix) :].split(":", 1)[0]
        if arg in ("--config", "-config") and i + 1 < len(argv):
            return argv[i + 1].split(":", 1)[0]
    return None


def add_config_root(argv: list[str]) -> str | None:
    """Puts the folder above the config's package on sys.path, so its `from configs.base import ...`
    resolves to the config's own siblings from any working directory; returns that folder."""
    path = config_path(argv)
    if not path:
        return None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(os.path.join(folder, "__init__.py")):
        return None
    root = os.path.dirname(folder)
    sys.path[:] = [root] + [
        p for p in sys.path if os.path.abspath(p or os.curdir) != root
    ]  # first, before any other `configs`
    return root


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    compile_cache.enable(compile_cache.resolve(_COMPILE_CACHE.value, _WORKDIR.value))
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
    """Console-script entry point (`amr-train`) and the body of `python -m experiments.main`."""
    add_config_root(sys.argv)
    app.run(main)
