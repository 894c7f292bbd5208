"""The evidence pipeline in smoke mode: compare.py's sweep, ablate.py's points, the results page."""

import json
import os

import numpy as np
import pytest

from amr.analysis import stats as seed_stats
from amr.runner import ablation, sweep
from configs import benchmarks
from experiments import results_page


def _run(seed, af, new=2.0):
    return {
        "seed": seed,
        "avg_forgetting": af,
        "max_forgetting": af * 2,
        "new_task_loss": new,
        "final_avg_loss": new,
        "forgetting_per_task": [af, af],
        "loss_matrix": [[1.0] * 3] * 3,
        "within_budget": True,
        "flops": {"total": 10.0, "train_new": 8.0},
    }


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
    assert reg["clearly_forgets"] and reg["forgetting_over_std"] == pytest.approx(
        0.24 / np.std([0.25, 0.21, 0.26], ddof=1)
    )


def test_unknown_names_fail_before_any_run(tmp_path):
    with pytest.raises(ValueError, match="benchmark: unknown benchmark 'mnist'"):
        sweep.run_sweep(
            ["mnist"], ["uniform"], None, str(tmp_path), str(tmp_path / "r.json"), get_config=benchmarks.get
        )
    with pytest.raises(ValueError, match="strategies: unknown strategy 'random'"):
        sweep.run_sweep(
            ["digits"], ["random"], None, str(tmp_path), str(tmp_path / "r.json"), get_config=benchmarks.get
        )
    with pytest.raises(ValueError, match="ablations: unknown ablation 'lr'"):
        ablation.run_ablations(
            "digits", ["lr"], None, str(tmp_path), str(tmp_path / "a.json"), get_config=benchmarks.get
        )
    assert not os.listdir(tmp_path)


def _fake_train_and_evaluate(config, workdir, progress=True):
    """Stands in for a training run: writes each (strategy, seed) run file from the config, like the engine."""
    os.makedirs(os.path.join(workdir, "runs"), exist_ok=True)
    calls.append(workdir)
    for s in config.strategies:
        for seed in config.seeds:
            af = 0.2 * config.bandit.tau + 0.01 * seed if s == "amr" else 0.3 + 0.01 * seed
            with open(os.path.join(workdir, "runs", f"{s}_seed{seed}.json"), "w") as f:
                json.dump(_run(seed, af), f)
    return {"tasks": list(config.data.domains)}


calls: list = []


def test_ablation_points_share_the_default_run_and_write_json_and_plot(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "train_and_evaluate", _fake_train_and_evaluate)
    calls.clear()
    out = str(tmp_path / "docs" / "ablations.json")
    abl = ablation.run_ablations(
        "digits", ["tau"], None, str(tmp_path / "abl"), out, progress=False, get_config=benchmarks.get
    )
    points = abl["benchmarks"]["digits"]["tau"]["points"]
    assert [p["label"] for p in points] == ["0.25", "0.5", "1.0", "2.0", "4.0"]
    assert [p["workdir"] for p in points][2] == "default"  # tau=1.0 is the default point: shared, not a new workdir
    assert len(set(calls)) == 5  # default + 4 other points
    np.testing.assert_allclose(
        [p["amr"]["avg_forgetting_mean"] for p in points], [0.2 * t + 0.01 for t in (0.25, 0.5, 1.0, 2.0, 4.0)]
    )
    assert points[2]["amr"]["vs_uniform"]["forgetting_diff_mean"] == pytest.approx(0.2 - 0.3)
    assert os.path.getsize(tmp_path / "docs" / "ablation_digits_tau.png") > 0
    with open(out) as f:
        assert json.load(f)["benchmarks"]["digits"]["tau"]["uniform_default"] == pytest.approx(0.31)


@pytest.mark.slow
def test_smoke_sweep_of_every_benchmark_and_the_page(tmp_path):
    """CI's smoke version: each benchmark for one seed and a few steps (amr; digits also uniform)."""
    out = str(tmp_path / "docs" / "results.json")
    runs = str(tmp_path / "runs")
    sweep.run_sweep(
        ["text", "image", "subpop"], ["amr"], None, runs, out, smoke=True, progress=False, get_config=benchmarks.get
    )
    results = sweep.run_sweep(
        ["digits"], ["uniform", "amr"], None, runs, out, smoke=True, progress=False, get_config=benchmarks.get
    )
    with open(out) as f:
        on_disk = json.load(f)
    assert set(on_disk["benchmarks"]) == set(benchmarks.BENCHMARKS) and "machine" in on_disk
    for bench in benchmarks.BENCHMARKS:
        entry = results["benchmarks"][bench]  # the earlier benchmarks were kept from the file
        assert entry["seeds"] == [0] and len(entry["tasks"]) >= 4
        s = entry["strategies"]["amr"]
        for key in (
            "avg_forgetting_mean",
            "avg_forgetting_ci95",
            "new_task_loss_mean",
            "final_avg_loss_mean",
            "flops_total",
        ):
            assert isinstance(s[key], float), (bench, key)
        assert s["within_budget"]
        assert entry["data"]["verified"] and len(entry["data"]["fingerprints"]) == 1  # digests of every run
    assert "environment" in on_disk
    uniform = results["benchmarks"]["digits"]["strategies"]["uniform"]
    assert results["benchmarks"]["digits"]["strategies"]["amr"]["flops_total"] <= uniform["flops_total"] * 1.005
    assert results["benchmarks"]["digits"]["strategies"]["amr"]["vs_uniform"]["seeds"] == [0]
    # a second call resumes: every run is loaded, nothing is retrained
    mtimes = {p: os.path.getmtime(p) for p in (tmp_path / "runs").rglob("*_seed0.json")}
    sweep.run_sweep(
        ["digits"], ["uniform", "amr"], None, runs, out, smoke=True, progress=False, get_config=benchmarks.get
    )
    assert all(os.path.getmtime(p) == t for p, t in mtimes.items())

    text = results_page.page(results, None, str(tmp_path / "docs"))
    assert "## Targets" in text
    for bench in benchmarks.BENCHMARKS:
        assert f"| {bench} |" in text and os.path.getsize(tmp_path / "docs" / f"results_{bench}.png") > 0


def test_runs_built_on_different_data_are_flagged():
    a, b = dict(_run(0, 0.2), init_losses=[5.0, 5.1]), dict(_run(0, 0.3), init_losses=[5.0, 5.2])
    assert seed_stats.same_initial_losses({"amr": [a], "uniform": [dict(a)]}) == {"ok": True, "tasks_that_differ": []}
    assert seed_stats.same_initial_losses({"amr": [a], "uniform": [b]}) == {"ok": False, "tasks_that_differ": [1]}
