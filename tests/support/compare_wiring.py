"""Runs experiments/compare.py's `main` on a few command lines with the workers, collect and the sweep recorded
instead of run, and prints one JSON line {case: {call: [args, kwargs]} or {"usage_error": message}}.

A separate process: compare.py's absl flags share names with other experiments modules the suite imports.
"""

import contextlib
import io
import json
import os
import sys
import tempfile
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
    return getattr(x, "__qualname__", type(x).__qualname__) if callable(x) else x


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


def early(workdir: str):
    """compare --workers=2 over digits and text, with workers that mark digits finished by both, then text by one
    only, polling after each: the sweeps run in that order (digits alone while the workers run, then all)."""
    calls = []

    def workers(module, argv, n, wd, path=None, on_poll=None):
        for i in range(n):
            sweep_workers.mark_done(os.path.join(wd, "workers", str(i), "digits"), (i, n))
        on_poll()
        on_poll()  # digits is summarised once
        sweep_workers.mark_done(os.path.join(wd, "workers", "0", "text"), (0, n))
        on_poll()  # text is not: worker 1 has not finished it
        calls.append("workers end")
        return [0] * n

    def sweep_call(benches, *args, **kwargs):
        calls.append([list(benches), kwargs["shard"]])
        return {"benchmarks": {}}

    stale = os.path.join(workdir, "workers", "1", "text")  # an earlier sweep's mark: cleared before the workers
    sweep_workers.mark_done(stale, (1, 2))
    argv = ["--workers=2", f"--workdir={workdir}", "--benchmarks=digits,text"]
    flags.FLAGS.unparse_flags()
    with (
        mock.patch.object(sys, "argv", ["compare.py", *argv]),
        mock.patch.object(sweep_workers, "run_workers", workers),
        mock.patch.object(sweep, "run_sweep", sweep_call),
    ):
        flags.FLAGS(["compare.py", *argv])
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            compare.main(["compare.py"])
    calls += [x.strip() for x in printed.getvalue().splitlines() if "after the workers started" in x]
    return calls


if __name__ == "__main__":
    seen = {name: run(argv) for name, argv in CASES.items()}
    with tempfile.TemporaryDirectory() as tmp:
        seen["early"] = early(tmp)
    print(json.dumps(seen))
