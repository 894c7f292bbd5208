"""experiments/results_share.py: uniform along its frontier against uniform at the default share."""

import numpy as np
import pytest

from experiments import results_share

SEEDS = list(range(6))


def _entry(forgetting, new, final, share=None, noise=0.001):
    rng = np.random.default_rng(int(1000 * forgetting) % 97)
    e = {"seeds": SEEDS}
    for key, mean in (("avg_forgetting", forgetting), ("new_task_loss_excl_first", new), ("final_avg_loss", final)):
        vals = (mean + noise * rng.normal(size=len(SEEDS))).tolist()
        e[f"{key}_per_seed"], e[f"{key}_mean"] = vals, float(np.mean(vals))
    if share is not None:
        e["variant"] = {"kind": "frontier", "base": "uniform", "replay_fraction": share}
    return e


def _bench(points):
    """uniform at 2/32 (forgetting 0.10, new-task loss 2.00, final 2.50) and frontier points {share: (f, n, fin)}."""
    s = {"uniform": _entry(0.10, 2.00, 2.50)}
    for share, (f, n, fin) in points.items():
        s[f"uniform@{round(32 * share)}/32"] = _entry(f, n, fin, share)
    return {"config": {"replay": {"fraction": 2 / 32}}, "strategies": s}


def test_rows_in_share_order_and_the_cheapest_gain():
    bench = _bench({8 / 32: (0.02, 2.05, 2.40), 1 / 32: (0.12, 1.99, 2.55), 4 / 32: (0.06, 2.01, 2.45)})
    rows = results_share.share_rows(bench)
    assert [r["share"] for r in rows] == [1 / 32, 4 / 32, 8 / 32]  # uniform itself is not a row
    assert rows[2]["forgetting_ratio"] == pytest.approx(0.2, rel=0.05)
    assert rows[2]["new_rel"] == pytest.approx(0.025, abs=0.002)
    # 8/32 forgets least but costs 2.5% new-task loss: the cheapest gain within 1% is 4/32
    best = results_share.cheapest_gain(rows)
    assert best["share"] == 4 / 32
    assert results_share.lowest_final_share(bench) == (8 / 32, True)
    text = "\n".join(results_share.share_section({"b": bench}))
    assert "| b | 4/32 | 0.60× |" in text and "- b: uniform at 4/32 forgets 0.60×" in text
    assert "lowest at 8/32, falling with every larger share tested" in text


def test_no_gain_within_one_percent_and_a_non_monotone_final_loss():
    bench = _bench({8 / 32: (0.02, 2.10, 2.40), 4 / 32: (0.10, 2.00, 2.60)})  # 4/32: no forgetting gain
    rows = results_share.share_rows(bench)
    assert results_share.cheapest_gain(rows) is None
    assert results_share.lowest_final_share(bench) == (8 / 32, False)  # 2.50 -> 2.60 -> 2.40
    text = "\n".join(results_share.share_section({"b": bench}))
    assert "- b: no larger share lowers forgetting significantly within 1%" in text
    assert "falling with every larger share" not in text


def test_nothing_without_a_frontier():
    assert results_share.share_section({"b": _bench({})}) == []
    assert results_share.share_rows({"strategies": {}}) == []
