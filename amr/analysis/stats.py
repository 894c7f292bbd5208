"""Across-seed statistics of finished runs: means, 95% intervals and paired differences.

A benchmark's entry in `docs/results.json` is built from the per-seed run results
(`runs/<strategy>_seed<k>.json`), so every interval is over seeds. Comparisons with the
reference strategy are paired by seed (same data split, init and new-task order), which
removes the seed-to-seed spread that both strategies share.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from amr.analysis import provenance
from amr.analysis.forgetting import ci95

METRICS = ("avg_forgetting", "max_forgetting", "new_task_loss", "final_avg_loss")


def load_runs(workdir: str, strategy: str, seeds) -> list[dict[str, Any]]:
    """The finished runs `<workdir>/runs/<strategy>_seed<k>.json` of `train_and_evaluate`."""
    runs = []
    for seed in seeds:
        with open(os.path.join(workdir, "runs", f"{strategy}_seed{seed}.json"), encoding="utf-8") as f:
            runs.append(json.load(f))
    return runs


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-seed results of one strategy -> mean and ci95 of each metric, FLOPs, budget check."""
    if not runs:
        raise ValueError("runs: no finished runs to summarize")
    out: dict[str, Any] = {"seeds": [int(r["seed"]) for r in runs]}
    for k in METRICS:
        vals = np.asarray([r[k] for r in runs], np.float64)
        out[f"{k}_mean"] = float(vals.mean())
        out[f"{k}_ci95"] = ci95(vals)
        out[f"{k}_per_seed"] = vals.tolist()
    out["flops_total"] = float(np.mean([r["flops"]["total"] for r in runs]))
    out["flops"] = {k: float(np.mean([r["flops"][k] for r in runs])) for k in runs[0]["flops"]}
    out["within_budget"] = bool(all(r["within_budget"] for r in runs))
    out["loss_matrix_mean"] = np.mean([r["loss_matrix"] for r in runs], axis=0).tolist()
    out["forgetting_per_task_mean"] = np.mean([r["forgetting_per_task"] for r in runs], axis=0).tolist()
    out["skipped_steps"] = int(sum(r.get("skipped_steps", 0) for r in runs))
    return out


def paired(runs: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Seed-paired comparison of `runs` against `reference` (None when no seed is shared)."""
    ref = {int(r["seed"]): r for r in reference}
    pairs = [(r, ref[int(r["seed"])]) for r in runs if int(r["seed"]) in ref]
    if not pairs:
        return None
    diff = np.asarray([a["avg_forgetting"] - b["avg_forgetting"] for a, b in pairs], np.float64)
    mine = float(np.mean([a["avg_forgetting"] for a, _ in pairs]))
    theirs = float(np.mean([b["avg_forgetting"] for _, b in pairs]))
    new_mine = float(np.mean([a["new_task_loss"] for a, _ in pairs]))
    new_theirs = float(np.mean([b["new_task_loss"] for _, b in pairs]))
    half = ci95(diff)
    return {
        "seeds": [int(a["seed"]) for a, _ in pairs],
        "forgetting_ratio": mine / theirs if theirs > 0 else float("nan"),
        "forgetting_diff_mean": float(diff.mean()),
        "forgetting_diff_ci95": half,
        "diff_ci_excludes_zero": bool(len(diff) > 1 and abs(diff.mean()) > half),
        "new_task_loss_rel": new_mine / new_theirs - 1.0,
        "lower_on_seeds": int(np.sum(diff < 0)),
    }


def regime(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether a strategy still forgets clearly: mean avg forgetting over 5x its seed std."""
    af = np.asarray([r["avg_forgetting"] for r in runs], np.float64)
    std = float(np.std(af, ddof=1)) if len(af) > 1 else float("nan")
    return {
        "avg_forgetting_mean": float(af.mean()),
        "avg_forgetting_std": std,
        "forgetting_over_std": float(af.mean() / std) if std and std > 0 else float("nan"),
        "clearly_forgets": bool(len(af) > 1 and af.mean() > 5 * std),
    }


def same_initial_losses(per_strategy: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Whether every strategy saw the same held-out data: same seed -> same init losses on every task.

    Data built from the environment (the `licenses` text domain reads installed packages) can
    change between runs made at different times; this names the tasks where it did. Runs that
    record data digests are checked first: differing digests raise `provenance.DataMismatch`."""
    provenance.check_runs(per_strategy, "same_initial_losses")
    by_seed: dict[int, list] = {}
    for runs in per_strategy.values():
        for r in runs:
            by_seed.setdefault(int(r["seed"]), []).append(np.asarray(r["init_losses"], np.float64))
    differ = sorted({int(j) for rows in by_seed.values() for row in rows[1:] for j in np.flatnonzero(row != rows[0])})
    return {"ok": not differ, "tasks_that_differ": differ}
