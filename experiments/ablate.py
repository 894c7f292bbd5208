"""Ablations of AMR on one benchmark: one knob at a time, everything else at the defaults.

    python -m experiments.ablate                          # all ablations on the default benchmark
    python -m experiments.ablate --ablations=tau,reward --benchmark=text
    python -m experiments.ablate --smoke --workdir=/tmp/abl --out=/tmp/abl/ablations.json

Each point is a `train_and_evaluate` run of `amr` (and `uniform` where the knob changes
the baseline too, or at the defaults) in <workdir>/<benchmark>/<point>, so an interrupted
sweep resumes. Points with the same effective config share a workdir. Writes
`--out` (default docs/ablations.json; other ablations and benchmarks already in it are kept)
and one plot per ablation next to it (ablation_<benchmark>_<name>.png).
"""

import json
import os
import sys

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/ from a checkout

from amr.runner import ablation, compile_cache  # noqa: E402
from configs import benchmarks  # noqa: E402

_BENCH = flags.DEFINE_string("benchmark", "text", "Benchmark to ablate on (configs/benchmarks.py).")
_ABL = flags.DEFINE_list("ablations", list(ablation.ABLATIONS), "Ablations to run.")
_SEEDS = flags.DEFINE_list("seeds", None, "Seeds (default: the benchmark config's seeds).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/ablate", "Root of the per-point workdirs.")
_OUT = flags.DEFINE_string("out", "docs/ablations.json", "Combined ablation JSON; plots are written next to it.")
_SMOKE = flags.DEFINE_bool("smoke", False, "One seed and a few steps (CI).")
_COMPILE_CACHE = flags.DEFINE_string(
    "compile_cache",
    compile_cache.AUTO,
    "Persistent XLA compilation cache: 'auto' = <workdir>/compile_cache, '' = JAX's own setting.",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    compile_cache.enable(compile_cache.resolve(_COMPILE_CACHE.value, _WORKDIR.value))
    try:
        results = ablation.run_ablations(
            _BENCH.value,
            _ABL.value,
            _SEEDS.value,
            _WORKDIR.value,
            _OUT.value,
            _SMOKE.value,
            get_config=benchmarks.get,
        )
    except ValueError as err:
        raise app.UsageError(str(err)) from None
    entry = results["benchmarks"][_BENCH.value]
    print(
        json.dumps(
            {
                a: [(p["label"], round(p["amr"]["avg_forgetting_mean"], 4)) for p in entry[a]["points"]]
                for a in _ABL.value
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    app.run(main)
