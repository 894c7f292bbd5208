"""The evidence pipeline in smoke mode: compare.py's sweep, ablate.py's points, the results page."""

import json
import os

import numpy as np
import pytest

from amr.analysis import stats as seed_stats
from amr.runner import ablation, named_variants, sweep
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
    seed_term = 0.01 * np.mean(benchmarks.get("digits").seeds)  # the stand-in adds 0.01 * seed
    np.testing.assert_allclose(
        [p["amr"]["avg_forgetting_mean"] for p in points], [0.2 * t + seed_term for t in (0.25, 0.5, 1.0, 2.0, 4.0)]
    )
    assert points[2]["amr"]["vs_uniform"]["forgetting_diff_mean"] == pytest.approx(0.2 - 0.3)
    assert os.path.getsize(tmp_path / "docs" / "ablation_digits_tau.png") > 0
    with open(out) as f:
        assert json.load(f)["benchmarks"]["digits"]["tau"]["uniform_default"] == pytest.approx(0.3 + seed_term)


@pytest.mark.slow
def test_smoke_sweep_of_one_benchmark_with_frontier_and_headroom(tmp_path):
    """CI's smoke sweep: styles for one seed and a few steps, every kind of entry, then the page."""
    out = str(tmp_path / "docs" / "results.json")
    results = sweep.run_sweep(
        ["styles"], ["none", "uniform", "amr"], None, str(tmp_path / "runs"), out, smoke=True, progress=False,
        get_config=benchmarks.get, frontier=(2,), headroom=(-2,),
    )  # fmt: skip
    entry = results["benchmarks"]["styles"]
    assert set(entry["strategies"]) == {"none", "uniform", "amr", "uniform@2/32", "tilted@-2"}  # styles: 4/32 default
    assert entry["headroom"]["best"] == "tilted@-2" and entry["regime_checks"]["forgetting_is_real"] is None  # 1 seed
    for s, e in entry["strategies"].items():
        # the bandit's own draws and updates (far less than a row) are not trimmed: within the ledger's 0.5%
        assert e["within_budget"] and e["budget_ratio_max"] <= 1.005, s
        assert e["wall_seconds_total"] > 0, s  # every run's time was recorded beside it
    text = results_page.page(results, None, str(tmp_path / "docs"))
    assert "| styles | `tilted@-2` |" in text and os.path.getsize(tmp_path / "docs" / "results_styles.png") > 0


@pytest.mark.extended
def test_smoke_sweep_of_every_benchmark_and_the_page(tmp_path):
    """The smoke version of every benchmark for one seed and a few steps (amr; digits also uniform). Extended:
    11 minutes on 2 cores; CI runs the one-benchmark version above."""
    out = str(tmp_path / "docs" / "results.json")
    runs = str(tmp_path / "runs")
    sweep.run_sweep(
        ["text", "styles", "subpop"], ["amr"], None, runs, out, smoke=True, progress=False, get_config=benchmarks.get
    )
    results = sweep.run_sweep(
        ["digits"], ["uniform", "amr"], None, runs, out, smoke=True, progress=False, get_config=benchmarks.get,
        frontier=(4,), headroom=(-2,),
    )  # fmt: skip
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
        ["digits"], ["uniform", "amr"], None, runs, out, smoke=True, progress=False, get_config=benchmarks.get,
        frontier=(4,), headroom=(-2,),
    )  # fmt: skip
    assert all(os.path.getmtime(p) == t for p, t in mtimes.items())
    assert "tilted@-2" in results["benchmarks"]["digits"]["strategies"]  # the headroom grid ran end to end

    text = results_page.page(results, None, str(tmp_path / "docs"))
    assert "## Targets" in text
    for bench in benchmarks.BENCHMARKS:
        assert f"| {bench} |" in text and os.path.getsize(tmp_path / "docs" / f"results_{bench}.png") > 0


def test_runs_built_on_different_data_are_flagged():
    a, b = dict(_run(0, 0.2), init_losses=[5.0, 5.1]), dict(_run(0, 0.3), init_losses=[5.0, 5.2])
    assert seed_stats.same_initial_losses({"amr": [a], "uniform": [dict(a)]}) == {"ok": True, "tasks_that_differ": []}
    assert seed_stats.same_initial_losses({"amr": [a], "uniform": [b]}) == {"ok": False, "tasks_that_differ": [1]}


def _write_runs_by_split(config, workdir, trimmed_of, share_of_batch):
    """Run files whose forgetting falls with the replay share, with plans: `trimmed_of(strategy)` new rows are
    trimmed; uniform runs `replay.new_rows` when it is set; `share_of_batch` gives the replay slots."""
    os.makedirs(os.path.join(workdir, "runs"), exist_ok=True)
    batch = config.train.batch_size
    for s in config.strategies:
        replay = 0 if s == "none" else int(round(share_of_batch * batch))
        new = config.replay.new_rows or batch - replay
        trimmed = trimmed_of(s)
        new -= trimmed
        share = replay / (new + replay)
        for seed in config.seeds:
            af = 0.6 - 2.0 * share + 0.01 * seed - (0.02 if s == "amr" else 0.0) + 0.003 * (seed % 2)
            run = dict(_run(seed, af, new=2.0 + share), loss_matrix=[[1.0, 2.0], [1.5, 2.0 + share]])
            run["plan"] = {"new_batch": new, "replay_batch": replay, "trimmed_rows": trimmed}
            run["init_losses"] = [3.0, 3.0]
            with open(os.path.join(workdir, "runs", f"{s}_seed{seed}.json"), "w") as f:
                json.dump(run, f)
    return {"tasks": ["a", "b"]}


def _fake_runs_by_split(config, workdir, progress=True):
    """Stands in for a training run whose forgetting falls with the replay share: mir trims 4 new rows to pay for
    its selection."""
    calls.append((workdir, tuple(config.strategies)))
    return _write_runs_by_split(config, workdir, lambda s: 4 if s == "mir" else 0, config.replay.fraction)


def test_sweep_adds_the_frontier_and_same_split_controls(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "train_and_evaluate", _fake_runs_by_split)
    calls.clear()
    out = str(tmp_path / "docs" / "results.json")
    results = sweep.run_sweep(
        ["digits"], ["none", "uniform", "amr", "mir"], [0, 1, 2], str(tmp_path / "runs"), out,
        smoke=True, progress=False, get_config=benchmarks.get,
    )  # fmt: skip
    entry = results["benchmarks"]["digits"]
    s = entry["strategies"]
    # 2/32 is the default share: the benchmark's own uniform run is that point of the frontier
    frontier, grid = ["uniform@1/32", "uniform@4/32", "uniform@8/32"], ["tilted@-2", "tilted@+2"]
    assert [k for k in s if "@" in k] == frontier + grid + ["uniform@split:mir"]
    assert s["uniform@4/32"]["variant"] == {"kind": "frontier", "base": "uniform", "replay_fraction": 4 / 32}
    # the headroom grid runs at uniform's share; here no allocation beats uniform (same fake forgetting)
    assert s["tilted@-2"]["variant"] == {"kind": "headroom", "base": "tilted", "task_tilt": -2.0}
    assert entry["headroom"]["best"] in grid and entry["headroom"]["best_vs_uniform"]["mean"] == pytest.approx(0.0)
    control = s["uniform@split:mir"]
    assert (control["plan"]["new_batch"], control["plan"]["replay_batch"]) == (26, 2)
    assert (control["plan"]["new_batch"], control["plan"]["replay_batch"]) == (
        s["mir"]["plan"]["new_batch"],
        s["mir"]["plan"]["replay_batch"],
    )
    assert (tmp_path / "runs" / "digits" / "variants" / "uniform@split-mir" / "runs" / "uniform_seed2.json").exists()
    # mir's only advantage here is its larger replay share: the split explains all of its gain
    split = entry["same_split"]["mir"]
    assert split["vs_uniform"]["mean"] < 0 and split["vs_same_split"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert split["explained_fraction"] == pytest.approx(1.0)
    assert entry["power"]["seeds_run"] == 3 and entry["power"]["comparison"] == "amr - uniform"
    assert entry["regime_checks"]["replay_matters"] is not None
    assert s["amr"]["new_task_loss_excl_first_mean"] == pytest.approx(2.0 + 2 / 32)
    with open(out) as f:
        assert json.load(f)["benchmarks"]["digits"]["same_split"]["mir"]["control"] == "uniform@split:mir"
    # no uniform, no frontier and no control
    calls.clear()
    sweep.run_sweep(
        ["digits"], ["amr", "mir"], [0], str(tmp_path / "r2"), str(tmp_path / "r2.json"),
        smoke=True, progress=False, get_config=benchmarks.get,
    )  # fmt: skip
    assert calls == [(str(tmp_path / "r2" / "digits"), ("amr", "mir"))]


def _fake_runs_trimming_with_probes(config, workdir, progress=True):
    """As `_fake_runs_by_split`, but a run with probes (`replay.probe_samples` > 0) trims 1 new row to pay for them,
    and a varying share's flex slots are its replay rows; records each entry's schedule and probes."""
    calls.append((workdir, tuple(config.strategies), config.replay.share, config.replay.probe_samples))
    share = config.replay.share_max if config.replay.share != "fixed" else config.replay.fraction
    return _write_runs_by_split(config, workdir, lambda s: 1 if config.replay.probe_samples else 0, share)


def test_a_named_entry_that_trims_gets_uniform_under_its_schedule_at_its_split(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "train_and_evaluate", _fake_runs_trimming_with_probes)
    calls.clear()
    results = sweep.run_sweep(
        ["digits"], ["none", "uniform", "amr+tail", "amr+tail+probes", "none+probes"], [0, 1],
        str(tmp_path / "runs"), str(tmp_path / "r.json"), smoke=True, progress=False, get_config=benchmarks.get,
        frontier=(), headroom=(),
    )  # fmt: skip
    s = results["benchmarks"]["digits"]["strategies"]
    control = s["uniform@split:amr+tail+probes"]
    assert control["plan"]["new_batch"] == s["amr+tail+probes"]["plan"]["new_batch"]
    assert control["plan"]["replay_batch"] == s["amr+tail+probes"]["plan"]["replay_batch"]
    assert (
        control["variant"]["overrides"] == named_variants.VARIANTS["tail"][1]
    )  # the schedule kept, the probes (selection) dropped
    ran = {c[0].rsplit("/", 1)[-1]: c[1:] for c in calls}
    assert ran["uniform@split-amr+tail+probes"] == (("uniform",), "schedule", 0)
    # negative controls: an entry that trims nothing, and one that replays nothing, get no control
    assert "uniform@split:amr+tail" not in s and "uniform@split:none+probes" not in s
    split = results["benchmarks"]["digits"]["same_split"]["amr+tail+probes"]
    assert split["control"] == "uniform@split:amr+tail+probes" and control["variant"]["of"] == "amr+tail+probes"


def _two_devices(name, smoke=False):
    config = benchmarks.get(name, smoke)
    config.mesh.num_devices = 2
    return config


@pytest.mark.parametrize(
    "strategies, get_config, match",
    [
        (["uniform", "uniform@0/32"], benchmarks.get, "strategies: 'uniform@0/32' is not"),
        (["uniform", "random@2/32"], benchmarks.get, "strategies: 'random@2/32' is not"),
        (["uniform@4/32"], benchmarks.get, "at least one plain strategy"),
        (["uniform", "amr+nosuch"], benchmarks.get, "strategies: 'amr\\+nosuch' is not"),
        (["uniform", "tilted+steady"], benchmarks.get, "strategies: 'tilted\\+steady' is not"),
        (["uniform", "uniform@3/32"], _two_devices, r"sweep entry 'uniform@1/32': replay\.fraction"),
    ],
)
def test_bad_sweep_entries_fail_before_any_run(tmp_path, monkeypatch, strategies, get_config, match):
    monkeypatch.setattr(sweep, "train_and_evaluate", _fake_runs_by_split)
    calls.clear()
    with pytest.raises(ValueError, match=match):
        sweep.run_sweep(["digits"], strategies, [0], str(tmp_path), str(tmp_path / "r.json"), get_config=get_config)
    assert not calls and not os.listdir(tmp_path)


def test_a_named_variant_runs_its_overrides_and_is_paired_with_uniform(tmp_path, monkeypatch):
    from amr.runner import named_variants

    seen = {}

    def fake(config, workdir, progress=True):
        seen[os.path.basename(workdir)] = (config.bandit.aggregate, config.bandit.normalize, tuple(config.methods))
        return _fake_runs_by_split(config, workdir, progress)

    monkeypatch.setattr(sweep, "train_and_evaluate", fake)
    monkeypatch.setitem(named_variants.VARIANTS, "probe", ("a test variant", {"bandit.normalize": "minmax"}))
    out = str(tmp_path / "r.json")
    results = sweep.run_sweep(
        ["digits"], ["uniform", "amr", "amr+steady", "amr+probe", "uniform+ewc"], [0, 1, 2], str(tmp_path / "runs"), out,
        smoke=True, progress=False, get_config=benchmarks.get, frontier=(), headroom=(),
    )  # fmt: skip
    assert seen["amr+steady"] == ("segment", "pooled", ()) and seen["amr+probe"] == ("row", "minmax", ())
    assert seen["uniform+ewc"] == ("row", "zscore", ("ewc",))  # a top-level key (`methods`) too
    assert seen["digits"] == ("row", "zscore", ())  # the plain runs keep the defaults (negative control)
    s = results["benchmarks"]["digits"]["strategies"]
    assert s["amr+steady"]["variant"] == {
        "kind": "named", "base": "amr", "name": "steady",
        "note": named_variants.VARIANTS["steady"][0], "overrides": named_variants.VARIANTS["steady"][1],
    }  # fmt: skip
    assert s["amr+steady"]["vs_uniform"]["seeds"] == [0, 1, 2]


def test_results_page_prints_the_evidence_and_the_pareto_plot(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "train_and_evaluate", _fake_runs_by_split)
    results = sweep.run_sweep(
        ["digits"], ["none", "uniform", "amr", "mir"], [0, 1, 2], str(tmp_path / "runs"), str(tmp_path / "r.json"),
        smoke=True, progress=False, get_config=benchmarks.get,
    )  # fmt: skip
    docs = tmp_path / "docs"
    text = results_page.page(results, None, str(docs))
    assert (docs / "results_digits_pareto.png").stat().st_size > 1000
    assert "![digits: forgetting against new-task loss, uniform's frontier](results_digits_pareto.png)" in text
    checks = results["benchmarks"]["digits"]["regime_checks"]
    rm, real = checks["replay_matters"], checks["forgetting_is_real"]
    assert f"- (a) replay matters: {'**PASS**' if rm['pass'] else '**FAIL**'}: uniform's average forgetting" in text
    assert f"is {real['over_sd']:.1f}× its seed-to-seed sd" in text
    power = results["benchmarks"]["digits"]["power"]
    assert f"| digits | `amr` | {power['paired_sd']:.4f} | " in text and "| 3 |" in text
    assert "| mir | 26 + 2 (`uniform@split:mir`) | " in text and "| 100% |" in text


def test_results_page_reads_results_written_before_the_evidence(tmp_path):
    """A results file of the first sweep (kept as tests/data/results_before_evidence.json) predates the new keys:
    the page shows n/a and computes what the per-seed values allow."""
    with open(os.path.join(os.path.dirname(__file__), "data", "results_before_evidence.json")) as f:
        old = json.load(f)
    text = results_page.page(old, None, str(tmp_path))
    assert "Pareto plot (forgetting against new-task loss over tasks 2..T): n/a" in text
    assert "n/a: no same-split control in these runs" in text
    assert "- (a) replay matters: **FAIL**: uniform's average forgetting" in text  # digits: 0.97x naive
    assert not list(tmp_path.glob("*_pareto.png"))
    stripped = {"benchmarks": {b: {k: v for k, v in e.items() if k != "config"} for b, e in old["benchmarks"].items()}}
    for e in stripped["benchmarks"].values():
        e["strategies"] = {"uniform": {k: v for k, v in e["strategies"]["uniform"].items() if "per_seed" not in k}}
    assert "| digits | `amr` | n/a | n/a | n/a | n/a | 3 | n/a | n/a |" in results_page.page(
        stripped, None, str(tmp_path)
    )


@pytest.mark.slow
def test_same_split_control_trains_at_the_trimming_strategys_split(tmp_path):
    """Real (tiny) training: the sweep adds uniform at mir's split, and the loop runs exactly that split."""
    from configs import tiny

    def get(name, smoke=False):
        c = tiny.get_config()
        c.train.steps_per_task, c.train.eval_every, c.train.checkpoint_every = 8, 0, 0
        return c

    results = sweep.run_sweep(
        ["tiny"], ["uniform", "mir"], [0], str(tmp_path / "runs"), str(tmp_path / "r.json"),
        progress=False, get_config=get, frontier=(), headroom=(),
    )  # fmt: skip
    s = results["benchmarks"]["tiny"]["strategies"]
    assert s["mir"]["plan"]["trimmed_rows"] > 0
    split = lambda e: (e["plan"]["new_batch"], e["plan"]["replay_batch"])  # noqa: E731
    assert split(s["uniform@split:mir"]) == split(s["mir"]) != split(s["uniform"])
    assert s["uniform@split:mir"]["plan"]["trimmed_rows"] == 0
    assert results["benchmarks"]["tiny"]["data"]["verified"]  # the control's runs saw the same data


def test_sweep_refuses_a_variant_made_on_different_data(tmp_path, monkeypatch):
    from amr.analysis import provenance

    def fake(config, workdir, progress=True):
        out = _fake_runs_by_split(config, workdir, progress)
        digest = "b" if "variants" in workdir else "a"  # the frontier's runs saw other data
        for path in (tmp_path / "runs").rglob("*_seed0.json"):
            run = json.loads(path.read_text())
            run.setdefault("data_digests", {"task": {"train": digest, "test": digest}})
            path.write_text(json.dumps(run))
        return out

    monkeypatch.setattr(sweep, "train_and_evaluate", fake)
    with pytest.raises(provenance.DataMismatch, match="uniform@1/32"):
        sweep.run_sweep(
            ["digits"], ["uniform"], [0], str(tmp_path / "runs"), str(tmp_path / "r.json"),
            smoke=True, progress=False, get_config=benchmarks.get, frontier=(1,),
        )  # fmt: skip
    assert not (tmp_path / "r.json").exists()
