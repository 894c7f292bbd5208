"""Runs experiments/compare.py's `main` on a few command lines with the workers, collect and the sweep recorded
instead of run, and prints one JSON line {case: {call: [args, kwargs]} or {"usage_error": message}}.

A separate process: compare.py's absl flags share names with other experiments modules the suite imports.
"""

import json
import sys
from unittest import mock

from absl import app, flags

from amr.runner import sweep, sweep_workers
from experiments import compare

CASES = {
    "split": ["--workers=2", "--workdir=wd", "--seeds=0,1", "--benchmarks=digits"],
    "worker": ["--workers=1", "--shard=1/2", "--workdir=wd/workers/1"],
    "entries_worker": ["--workers=1", "--shard=0/2", "--split=entries", "--workdir=wd/workers/0"],
    "bad_split": ["--shard=0/2", "--split=tasks"],
    "bad_shard": ["--shard=2/2"],
    "bad_workers": ["--workers=0"],
}


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return getattr(x, "__qualname__", repr(x)) if callable(x) else x


def run(argv):
    seen = {}

    def record(name, result):
        def fn(*args, **kwargs):
            seen[name] = _jsonable([list(args), kwargs])
            return result

        return fn

    flags.FLAGS.unparse_flags()
    with (
        mock.patch.object(sys, "argv", ["compare.py", *argv]),
        mock.patch.object(sweep_workers, "run_workers", record("run_workers", [0, 0])),
        mock.patch.object(sweep_workers, "collect", record("collect", 0)),
        mock.patch.object(sweep, "run_sweep", record("run_sweep", {"benchmarks": {}})),
    ):
        flags.FLAGS(["compare.py", *argv])
        try:
            compare.main(["compare.py"])
        except app.UsageError as err:
            seen["usage_error"] = str(err)
    return seen


if __name__ == "__main__":
    print(json.dumps({name: run(argv) for name, argv in CASES.items()}))
