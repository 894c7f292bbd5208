"""Named strategy variants for the sweep: `<strategy>+<name>` runs a strategy under a fixed set of overrides.

    amr+steady     amr with one estimator step per arm per chunk and the pooled spread of single rewards
    amr+benefit    amr with the free marginal-benefit reward (docs/REWARDS.md)
    amr+clusters   amr over 4 k-means arms per task, from the training passes' free embeddings
    amr+controller amr with an adaptive replay share (amr.replay.share), its realised share in the results
    uniform+front  uniform with a front-loaded replay schedule at the same mean share (+back: end-loaded;
                   +tail: all of a task's replay in its last stretch)
    uniform+ewc    a strategy with one companion method of amr.methods (any of its METHODS: none+ema, amr+lines, ...)

`RECOMMENDED_AMR` names the recommended default AMR (bandit selection plus a replay schedule at the same mean
share) and `RECOMMENDED_TWIN` its ablation twin: the same overrides under uniform selection, so the pair
separates what the schedule gives from what the selection gives.

Each is one idea of issue #12's AMR, ablated one at a time against uniform in the same sweep (same code, data
and seeds; paired by seed). A variant that changes the replay share is compared with uniform at that share by
the frontier, not here. Add a variant by adding a line to `VARIANTS`; the sweep validates its overrides before
any run (a key the config lacks fails by name).
"""

from __future__ import annotations

from amr.methods.registry import METHODS

SEP = "+"

# name -> (what it tests, {dotted config key: value})
VARIANTS: dict[str, tuple[str, dict]] = {
    "steady": (
        "a steadier bandit: a segment mean per arm per chunk, normalised by the pooled spread of single rewards",
        {"bandit.aggregate": "segment", "bandit.normalize": "pooled"},
    ),
    "benefit": (
        "a free marginal-benefit reward (docs/REWARDS.md: the slope of an arm's forgetting drift on its replay "
        "intensity), normalised by the pooled spread (zscore over few arms hides the size of any gap)",
        {"replay.reward": "benefit", "bandit.normalize": "pooled"},
    ),
    "clusters": (
        "cluster arms from free embeddings: 4 k-means clusters per task over the pooled representations the "
        "training passes already computed (no paid embedding pass, so no new rows trimmed for it)",
        {"replay.clusters_per_task": 4, "replay.embeddings": "free"},
    ),
    "controller": (
        "an adaptive replay share: each chunk's replay rows in [0, 4/32] of the batch, raised when replayed rows "
        "forget faster than new rows improve, pulled back to the configured share (amr.replay.share)",
        {"replay.share": "controller", "replay.share_min": 0.0, "replay.share_max": 0.125},
    ),
    "front": (
        "a replay schedule at the same mean share: most replay right after a task starts, least at its end",
        {
            "replay.share": "schedule",
            "replay.share_schedule": "front",
            "replay.share_min": 0.0,
            "replay.share_max": 0.25,
        },
    ),
    "back": (
        "a replay schedule at the same mean share: least replay right after a task starts, most at its end",
        {
            "replay.share": "schedule",
            "replay.share_schedule": "back",
            "replay.share_min": 0.0,
            "replay.share_max": 0.25,
        },
    ),
    "tail": (
        "a replay schedule at the same mean share: no replay until the last stretch of each task, which replays "
        "8/32 of the batch (the stretch is fraction / (8/32) of the task)",
        {
            "replay.share": "schedule",
            "replay.share_schedule": "tail",
            "replay.share_min": 0.0,
            "replay.share_max": 0.25,
        },
    ),
}


def split(entry: str) -> tuple[str, str] | None:
    """`'amr+steady'` -> `('amr', 'steady')`; None for an entry without `+`."""
    if SEP not in entry:
        return None
    base, _, name = entry.partition(SEP)
    return base, name


def twin(entry: str, base: str = "uniform") -> str:
    """The same named variant over another base strategy: `twin('amr+tail')` -> `'uniform+tail'`."""
    parts = split(entry)
    if parts is None:
        raise ValueError(f"twin: {entry!r} is not a named variant '<strategy>{SEP}<name>'")
    return f"{base}{SEP}{parts[1]}"


RECOMMENDED_AMR = "amr+tail"  # the recommended default AMR, chosen on the development benchmark `text` only
RECOMMENDED_TWIN = twin(RECOMMENDED_AMR)  # the same schedule under uniform selection: what the selection adds


# Every companion method (docs/METHODS.md) alone on top of a strategy: `none+ewc`, `uniform+ewc`, `amr+ewc`.
for _method in METHODS:
    VARIANTS.setdefault(_method, (f"the companion method {_method!r} (docs/METHODS.md)", {"methods": (_method,)}))
