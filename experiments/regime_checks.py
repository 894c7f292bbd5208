"""The regime search's checks and how a recorded setting becomes a run's config (no flags: importable anywhere).

(a) replay matters: uniform's average forgetting <= 0.8x naive's (`none`), and the seed-paired
    (uniform - none) difference has a 95% interval excluding 0;
(b) forgetting is real: uniform's average forgetting > 5x its seed-to-seed sd.
"""

from __future__ import annotations

import importlib

STRATEGIES = ("none", "uniform")
RATIO_MAX, SD_MULTIPLE = 0.8, 5.0


def _apply(config, overrides: dict) -> None:
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for p in parents:
            node = node[p]
        if leaf not in node:  # a ConfigDict would silently grow the key: the setting would not rerun as tried
            raise KeyError(f"override {dotted!r}: the config has no such key")
        node[leaf] = tuple(value) if isinstance(value, list) else value


def seed_config(setting: dict, seed: int, strategy: str):
    config = importlib.import_module(setting["config"]).get_config()
    _apply(config, setting["overrides"])
    config.seeds, config.strategies, config.baseline = (seed,), (strategy,), strategy
    if config.data.get("resplit_per_seed", False):  # what make_tasks(..., run_seed=seed) gives
        config.data.seed = int(config.data.seed) + seed
        config.data.resplit_per_seed = False
    config.train.checkpoint_every = 0
    return config


def regime(none_af: list[float], uniform_af: list[float]) -> dict:
    """The two regime checks on per-seed average forgetting (seed-paired)."""
    from amr.analysis import stats  # pylint: disable=import-outside-toplevel

    u, n = stats.describe(uniform_af), stats.describe(none_af)
    diff = stats.paired_difference(uniform_af, none_af)
    ratio = u["mean"] / n["mean"] if n["mean"] else float("nan")
    over_sd = u["mean"] / u["std"] if u["std"] > 0 else float("nan")
    lo, hi = diff["mean"] - diff["ci95"], diff["mean"] + diff["ci95"]
    return dict(
        none_af=n["mean"],
        uniform_af=u["mean"],
        uniform_sd=u["std"],
        ratio=ratio,
        paired_diff=diff["mean"],
        paired_ci95=[lo, hi],
        replay_matters=bool(ratio <= RATIO_MAX and hi < 0),
        uniform_af_over_sd=over_sd,
        forgetting_real=bool(u["mean"] > SD_MULTIPLE * u["std"]),
    )
