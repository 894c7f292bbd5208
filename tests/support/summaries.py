"""Fabricated run records and sweep entries for the results-page tests (no training): what
`sweep.summarize_benchmark` would build from runs with the given per-seed values."""

import numpy as np

from amr.analysis import stats


def runs(af, final, new=2.0, flops=10.0, seeds=range(10)):
    """One run record per seed: average forgetting `af[k]`, final average loss `final[k]`, new-task loss `new`
    (a number, or one per seed) and total FLOPs `flops`."""
    new = np.broadcast_to(np.asarray(new, dtype=float), (max(seeds) + 1,))
    return [
        {
            "seed": k,
            "avg_forgetting": float(af[k]),
            "max_forgetting": float(2 * af[k]),
            "new_task_loss": float(new[k]),
            stats.NEW_TASK_LOSS: float(new[k]),
            "final_avg_loss": float(final[k]),
            "forgetting_per_task": [float(af[k])] * 2,
            "loss_matrix": [[1.0] * 3] * 3,
            "within_budget": True,
            "flops": {"total": flops, "train_new": 8.0},
        }
        for k in seeds
    ]


def entry(runs_by_name: dict, seeds=tuple(range(10))) -> dict:
    """A sweep entry built like `sweep.summarize_benchmark`: summaries and the paired comparison with uniform."""
    s = {}
    for name, r in runs_by_name.items():
        s[name] = stats.summarize(r)
        if name != "uniform":
            s[name]["vs_uniform"] = stats.paired(r, runs_by_name["uniform"])
    uniform = runs_by_name["uniform"]
    return {"tasks": ["a", "b", "c"], "seeds": list(seeds), "strategies": s, "regime": stats.regime(uniform)}


SEEDS = list(range(10))
U_AF = np.array([0.100 + 0.004 * k + 0.002 * ((7 * k) % 5) for k in SEEDS])  # uniform's average forgetting
U_FINAL = np.array([3.0 + 0.01 * k for k in SEEDS])  # uniform's final average loss
JITTER = np.array([0.0005 * ((3 * k) % 4 - 1.5) for k in SEEDS])  # a small per-seed spread of differences
