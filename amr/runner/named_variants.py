"""Named strategy variants for the sweep: `<strategy>+<name>` runs a strategy under a fixed set of overrides.

    amr+steady     amr with one estimator step per arm per chunk and the pooled spread of single rewards
    amr+benefit    amr with the free marginal-benefit reward (docs/REWARDS.md)

Each is one idea of issue #12's AMR, ablated one at a time against uniform in the same sweep (same code, data
and seeds; paired by seed). A variant that changes the replay share is compared with uniform at that share by
the frontier, not here. Add a variant by adding a line to `VARIANTS`; the sweep validates its overrides before
any run (a key the config lacks fails by name).
"""

from __future__ import annotations

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
}


def split(entry: str) -> tuple[str, str] | None:
    """`'amr+steady'` -> `('amr', 'steady')`; None for an entry without `+`."""
    if SEP not in entry:
        return None
    base, _, name = entry.partition(SEP)
    return base, name
