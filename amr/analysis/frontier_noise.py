"""How much of a frontier verdict is seed noise: the seed bootstrap of `evidence.vs_frontier`.

`vs_frontier` places an entry's point (means over seeds) against uniform's frontier (means over the same seeds,
one point per share), with no allowance for noise. Here the seeds are resampled with replacement, the same draw
for the entry and every frontier point (the runs are paired by seed), every mean is recomputed, and the point is
placed again; the share of resamples in which it lies below says how firmly the verdict holds (near 0 or 1: the
seeds decide it; near 0.5: they do not).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amr.analysis import evidence, stats

RESAMPLES = 1000
SEED = 0  # the resampling's own seed: pages regenerate byte for byte


def resampled_below(
    entry: dict[str, Any], name: str, resamples: int = RESAMPLES, seed: int = SEED
) -> dict[str, Any] | None:
    """{"below": share of seed resamples in which `name` lies below uniform's frontier, "resamples", "seeds"}, over
    the seeds the entry and every frontier point have; None when `vs_frontier` is n/a or fewer than 2 seeds are
    shared."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if evidence.vs_frontier(entry, name) is None:
        return None
    s = entry["strategies"]
    names = {id(e): n for n, e in s.items()}
    members = [names[id(e)] for _, e in evidence.frontier_points(entry)] + [name]
    keys = (stats.NEW_TASK_LOSS, "avg_forgetting")
    values = {n: [evidence.per_seed(s[n], k) for k in keys] for n in members}
    seeds = sorted(set.intersection(*(set(v) for n in members for v in values[n])))
    if len(seeds) < 2:
        return None
    draw_BS = np.random.default_rng(seed).integers(0, len(seeds), size=(resamples, len(seeds)))
    means = {  # name -> (new-task loss, forgetting) means per resample, [B] each
        n: [np.asarray([v[k] for k in seeds])[draw_BS].mean(axis=1) for v in values[n]] for n in members
    }
    below, (new_B, forgetting_B) = 0, means[name]
    for b in range(resamples):
        curve = [(n, float(means[n][0][b]), float(means[n][1][b])) for n in members[:-1]]
        below += evidence.frontier_margin(curve, float(new_B[b]), float(forgetting_B[b]))["below"]
    return {"below": below / resamples, "resamples": resamples, "seeds": len(seeds)}
