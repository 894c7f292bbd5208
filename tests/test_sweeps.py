"""The evidence pipeline in smoke mode: compare.py's sweep, ablate.py's points, the results page."""

import json
import os

import numpy as np
import pytest

from amr import ablation, seed_stats, sweep
from configs import benchmarks
from experiments import results_page


def _run(seed, af, new=2.0):
    return {"seed": seed, "avg_forgetting": af, "max_forgetting": af * 2, "new_task_loss": new, "final_avg_loss": new,
            "forgetting_per_task": [af, af], "loss_matrix": [[1.0] * 3] * 3, "within_budget": True,
            "flops": {"total": 10.0, "train_new": 8.0}}


def test_paired_comparison_matches_a_hand_computation():
    amr = [_run(0, 0.20), _run(1, 0.18), _run(2, 0.22)]
    uni = [_run(0, 0.25), _run(1, 0.21), _run(2, 0.26)]
    out = seed_stats.paired(amr, uni)
    diff = np.array([-0.05, -0.03, -0.04])
    assert out["forgetting_diff_mean"] == pytest.approx(diff.mean())
    assert out["forgetting_diff_ci95"] == pytest.approx(4.302652729911275 * diff.std(ddof=1) / np.sqrt(3))
    assert out["diff_ci_excludes_zero"] and out["lower_on_seeds"] == 3
    assert out["forgetting_ratio"] == pytest.approx(0.60 / 0.72)
    assert seed_stats.paired(amr, [_run(7, 0.1)]) is None  # no shared seed, no comparison
    reg = seed_stats.regime(uni)
    assert reg["clearly_forgets"] and reg["forgetting_over_std"] == pytest.approx(0.24 / np.std([.25, .21, .26], ddof=1))


def test_unknown_names_fail_before_any_run(tmp_path):
    with pytest.raises(ValueError, match="benchmark: unknown benchmark 'mnist'"):
        sweep.run_sweep(["mnist"], ["uniform"], None, str(tmp_path), str(tmp_path / "r.json"))
    with pytest.raises(ValueError, match="strategies: unknown strategy 'random'"):
        sweep.run_sweep(["digits"], ["random"], None, str(tmp_path), str(tmp_path / "r.json"))
    with pytest.raises(ValueError, match="ablations: unknown ablation 'lr'"):
        ablation.run_ablations("digits", ["lr"], None, str(tmp_path), str(tmp_path / "a.json"))
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_smoke_sweep_ablation_and_page(tmp_path):
    """Every benchmark builds and runs (amr); digits also runs uniform, so the comparison and the page have data."""
    out, abl_out = str(tmp_path / "docs" / "results.json"), str(tmp_path / "docs" / "ablations.json")
    runs = str(tmp_path / "runs")
    sweep.run_sweep(["text", "image"], ["amr"], None, runs, out, smoke=True, progress=False)
    results = sweep.run_sweep(["digits"], ["uniform", "amr"], None, runs, out, smoke=True, progress=False)
    with open(out) as f:
        on_disk = json.load(f)
    assert set(on_disk["benchmarks"]) == set(benchmarks.BENCHMARKS) and "machine" in on_disk
    for bench in benchmarks.BENCHMARKS:
        entry = results["benchmarks"][bench]  # the earlier benchmarks were kept from the file
        assert entry["seeds"] == [0] and len(entry["tasks"]) >= 4
        s = entry["strategies"]["amr"]
        for key in ("avg_forgetting_mean", "avg_forgetting_ci95", "new_task_loss_mean", "final_avg_loss_mean",
                    "flops_total"):
            assert isinstance(s[key], float), (bench, key)
        assert s["within_budget"]
    uniform = results["benchmarks"]["digits"]["strategies"]["uniform"]
    assert results["benchmarks"]["digits"]["strategies"]["amr"]["flops_total"] <= uniform["flops_total"] * 1.005
    assert results["benchmarks"]["digits"]["strategies"]["amr"]["vs_uniform"]["seeds"] == [0]
    # a second call resumes: every run is loaded, nothing is retrained
    mtimes = {p: os.path.getmtime(p) for p in (tmp_path / "runs").rglob("*_seed0.json")}
    sweep.run_sweep(["digits"], ["uniform", "amr"], None, runs, out, smoke=True, progress=False)
    assert all(os.path.getmtime(p) == t for p, t in mtimes.items())

    abl = ablation.run_ablations("digits", ["reward"], None, str(tmp_path / "abl"), abl_out, smoke=True,
                                 progress=False)
    points = abl["benchmarks"]["digits"]["reward"]["points"]
    assert [p["label"] for p in points] == ["loss", "loss_increase"]
    assert points[1]["workdir"] == "default"  # the default point is shared, not rerun
    assert os.path.getsize(tmp_path / "docs" / "ablation_digits_reward.png") > 0

    text = results_page.page(results, abl, str(tmp_path / "docs"))
    assert "## Targets" in text and "### On digits" in text
    for bench in benchmarks.BENCHMARKS:
        assert f"| {bench} |" in text and os.path.getsize(tmp_path / "docs" / f"results_{bench}.png") > 0
