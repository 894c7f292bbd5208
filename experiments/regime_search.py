"""Reruns the search for benchmark settings that pass the two regime checks; prints JSON.

    python -m experiments.regime_search                       # every setting not yet in the output
    python -m experiments.regime_search --only=digits_s640    # some settings (comma-separated ids)
    python -m experiments.regime_search --list                # the settings, nothing run

Every setting is a benchmark config (`configs/<module>.py`) with a few overrides, run with
`none` and `uniform` only (no other strategy is ever run here: settings are chosen by the
regime checks alone, never by how a replay-selection method does) for `--seeds` seeds:

  (a) replay matters: uniform's average forgetting <= 0.8x naive's (`none`), and the seed-paired
      (uniform - none) difference has a 95% interval excluding 0;
  (b) forgetting is real: uniform's average forgetting > 5x its seed-to-seed sd.

Each (setting, seed) is one workdir `<root>/<id>/seed<k>` with `config.seeds=(k,)`. With
`data.resplit_per_seed` the seed also picks the splits: the run gets `data.seed + k` (what
`make_tasks(..., run_seed=k)` gives). Finished runs are reused (the runner's own resume) and
finished settings are kept in `--out` (docs/regime_search.json), written after every setting,
so an interrupted search resumes where it stopped. Times are wall seconds of one
(strategy, seed) run as measured here, with the 1-minute load average when it started; JAX's
persistent compilation cache (under `<root>`) lets later seeds skip recompiling, as one
process running all seeds would.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this clone's amr and configs

from absl import app, flags  # noqa: E402

from experiments.regime_checks import RATIO_MAX, SD_MULTIPLE, STRATEGIES, regime, seed_config  # noqa: E402
from experiments.regime_settings import SETTINGS  # noqa: E402

_OUT = flags.DEFINE_string("out", "docs/regime_search.json", "JSON file of every setting's numbers")
_ROOT = flags.DEFINE_string("root", "/tmp/regime_search", "workdirs of the runs")
_SEEDS = flags.DEFINE_integer("seeds", 5, "seeds per setting")
_ONLY = flags.DEFINE_string("only", "", "comma-separated setting ids (default: all)")
_REDO = flags.DEFINE_bool("redo", False, "rerun settings already in --out")
_LIST = flags.DEFINE_bool("list", False, "print the settings and exit")


def _run(setting: dict, seed: int, strategy: str, root: str) -> dict:
    from amr.runner.experiment import train_and_evaluate  # pylint: disable=import-outside-toplevel

    workdir = os.path.join(root, setting["id"], f"seed{seed}")
    path = os.path.join(workdir, "runs", f"{strategy}_seed{seed}.json")
    timing_path = path + ".seconds"
    if not os.path.exists(path):
        load, t0 = os.getloadavg()[0], time.time()
        train_and_evaluate(seed_config(setting, seed, strategy), workdir, progress=False)
        with open(timing_path, "w") as f:
            json.dump(dict(seconds=time.time() - t0, load1=load), f)
    with open(path) as f:
        run = json.load(f)
    timing = json.load(open(timing_path)) if os.path.exists(timing_path) else {}
    return dict(
        avg_forgetting=run["avg_forgetting"],
        new_task_loss=run["new_task_loss"],
        forgetting_per_task=run["forgetting_per_task"],
        init_losses=run["init_losses"],
        task_end_losses=[row[t] for t, row in enumerate(run["loss_matrix"])],
        before_losses=[run["init_losses"][0]]
        + [run["loss_matrix"][t - 1][t] for t in range(1, len(run["loss_matrix"]))],
        **timing,
    )


def run_setting(setting: dict, seeds: int, root: str) -> dict:
    seeds = setting.get("seeds", seeds)
    per = {s: [_run(setting, k, s, root) for k in range(seeds)] for s in STRATEGIES}
    checks = regime([r["avg_forgetting"] for r in per["none"]], [r["avg_forgetting"] for r in per["uniform"]])
    checks["passes"] = checks["replay_matters"] and checks["forgetting_real"]
    secs = {s: [round(r.get("seconds", float("nan")), 1) for r in per[s]] for s in STRATEGIES}
    return dict(
        setting,
        seeds=list(range(seeds)),
        regime=checks,
        per_seed={s: [r["avg_forgetting"] for r in per[s]] for s in STRATEGIES},
        new_task_loss={s: sum(r["new_task_loss"] for r in per[s]) / seeds for s in STRATEGIES},
        # per task, seed 0 of none: 1 - (held-out loss at its task end) / (its loss just before its task:
        # at init for the first): how much training on the task taught the model about it
        learned_share=[
            round(1 - e / i, 3) for e, i in zip(per["none"][0]["task_end_losses"], per["none"][0]["before_losses"])
        ],
        forgetting_per_task={
            s: [
                round(sum(r["forgetting_per_task"][j] for r in per[s]) / seeds, 4)
                for j in range(len(per[s][0]["forgetting_per_task"]))
            ]
            for s in STRATEGIES
        },
        seconds_per_run=secs,
        load1=[round(r.get("load1", float("nan")), 2) for s in STRATEGIES for r in per[s]],
    )


def main(argv):
    del argv
    chosen = [s for s in SETTINGS if not _ONLY.value or s["id"] in _ONLY.value.split(",")]
    if _LIST.value:
        print(json.dumps(chosen, indent=1))
        return
    import jax  # pylint: disable=import-outside-toplevel

    jax.config.update("jax_compilation_cache_dir", os.path.join(_ROOT.value, "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    done = {}
    if os.path.exists(_OUT.value):
        with open(_OUT.value) as f:
            done = {r["id"]: r for r in json.load(f)["settings"]}
    for setting in chosen:
        if setting["id"] in done and not _REDO.value:
            continue
        result = run_setting(setting, _SEEDS.value, _ROOT.value)
        done[setting["id"]] = result
        print(json.dumps({setting["id"]: result["regime"]}), file=sys.stderr, flush=True)
        order = [s["id"] for s in SETTINGS] + sorted(set(done) - {s["id"] for s in SETTINGS})
        doc = dict(
            checks=f"(a) uniform/none <= {RATIO_MAX} and paired 95% CI of uniform-none excludes 0; "
            f"(b) uniform AF > {SD_MULTIPLE} x seed sd",
            strategies=list(STRATEGIES),
            settings=[done[i] for i in order if i in done],
        )
        os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
        tmp = _OUT.value + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, _OUT.value)
    with open(_OUT.value) as f:
        print(f.read())


if __name__ == "__main__":
    app.run(main)
