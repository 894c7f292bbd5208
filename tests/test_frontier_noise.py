"""amr/analysis/frontier_noise.py: the seed bootstrap of an entry's place against uniform's frontier."""

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from amr.analysis import evidence, frontier_noise
from tests.support import summaries
from tests.support.summaries import JITTER, U_AF, U_FINAL

NOISE = np.array([0.03 * ((5 * k) % 7 - 3) for k in range(10)])  # a per-seed spread larger than the gaps below


def _bench(af, new=2.0):
    """uniform at 2/32 (new-task loss 2.0) and at 8/32 (2.02, 0.3x the forgetting), and `x` with average
    forgetting `af` (per seed) and new-task loss `new`."""
    runs = {
        "uniform": summaries.runs(U_AF, U_FINAL),
        "uniform@8/32": summaries.runs(0.3 * U_AF, U_FINAL, new=2.02),
        "x": summaries.runs(af, U_FINAL, new=new),
    }
    entry = summaries.entry(runs)
    entry["config"] = {"replay": {"fraction": 2 / 32}}
    entry["strategies"]["uniform@8/32"]["variant"] = {"kind": "frontier", "base": "uniform", "replay_fraction": 0.25}
    return entry


def test_a_verdict_every_seed_agrees_on_holds_in_every_resample():
    below = frontier_noise.resampled_below(_bench(0.5 * U_AF + JITTER), "x")
    assert below == {"below": 1.0, "resamples": frontier_noise.RESAMPLES, "seeds": 10}
    # negative control: forgetting more than uniform at uniform's new-task loss is above in every resample
    assert frontier_noise.resampled_below(_bench(1.5 * U_AF + JITTER), "x")["below"] == 0.0


def test_a_point_on_the_frontier_within_seed_noise_is_undecided():
    entry = _bench(U_AF + NOISE * U_AF)
    assert evidence.vs_frontier(entry, "x") is not None
    share = frontier_noise.resampled_below(entry, "x")["below"]
    assert 0.1 < share < 0.9
    # the resampling is seeded: the page regenerates byte for byte; another seed gives another draw
    assert frontier_noise.resampled_below(entry, "x") == frontier_noise.resampled_below(entry, "x")
    assert frontier_noise.resampled_below(entry, "x", seed=1)["below"] != share


def test_no_frontier_or_no_shared_seeds_is_na_and_bad_resamples_are_named():
    entry = _bench(0.5 * U_AF)
    assert frontier_noise.resampled_below(entry, "absent") is None
    del entry["strategies"]["uniform@8/32"]
    assert frontier_noise.resampled_below(entry, "x") is None  # one frontier point: vs_frontier is n/a
    with pytest.raises(ValueError, match="resamples must be >= 1, got 0"):
        frontier_noise.resampled_below(_bench(0.5 * U_AF), "x", resamples=0)


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(scale=st.floats(0.2, 1.8), resamples=st.integers(1, 60))
def test_the_share_is_a_fraction_of_the_resamples(scale, resamples):
    got = frontier_noise.resampled_below(_bench(scale * U_AF + JITTER), "x", resamples=resamples)
    assert 0.0 <= got["below"] <= 1.0 and round(got["below"] * resamples) == pytest.approx(got["below"] * resamples)
