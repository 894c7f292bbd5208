"""End to end on the tiny config: results schema, budget, plots, resume, CLI."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from amr.analysis import provenance
from amr.data import make_tasks
from amr.runner.experiment import train_and_evaluate
from amr.train import loop as train_lib
from configs import tiny

# End-to-end runs (a module fixture trains a whole run): the slow tier, which CI runs after the fast one.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config():
    cfg = tiny.get_config()
    cfg.mesh.num_devices = 2  # data-parallel over 2 of the 8 fake CPU devices
    return cfg


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run"))
    return workdir, train_and_evaluate(_config(), workdir, progress=False)


def test_results_schema_and_files(finished):
    workdir, results = finished
    with open(os.path.join(workdir, "results.json")) as f:
        on_disk = json.load(f)
    assert on_disk["tasks"] == list(tiny.get_config().data.domains)
    T = len(on_disk["tasks"])
    assert set(on_disk["strategies"]) == {"none", "uniform", "amr"}
    for entry in on_disk["strategies"].values():
        for key in ("seeds", "loss_matrix", "avg_forgetting", "avg_forgetting_std", "final_avg_loss", "new_task_loss"):
            assert key in entry
        assert np.asarray(entry["loss_matrix"]).shape == (T, T)
        assert np.all(np.isfinite(entry["loss_matrix"]))
        assert set(entry["flops"]) >= {"total", "train_new", "train_replay", "selection", "eval"}
    for name in (
        "loss_matrix_amr.png",
        "forgetting_curves.png",
        "arm_probs.png",
        "forgetting_vs_flops.png",
        "metrics.jsonl",
    ):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert {r["kind"] for r in records} >= {"train", "task_end"}


def test_results_record_data_digests_and_environment(finished, tmp_path):
    workdir, _ = finished
    expected = provenance.data_digests(make_tasks(_config().data))
    paths = [os.path.join(workdir, "results.json")] + [
        os.path.join(workdir, "runs", f"{s}_seed0.json") for s in ("none", "uniform", "amr")
    ]
    for path in paths:
        with open(path) as f:
            on_disk = json.load(f)
        assert on_disk["data_digests"] == expected, path
        assert {"python", "jax", "jaxlib", "flax", "optax", "numpy", "platform"} <= set(on_disk["environment"])
        if "runs" in path:  # each run also records the code it was made from (None outside a git checkout)
            assert on_disk["code"] == provenance.code_version(), path
    # Finished runs are reused only on the same data: equal digests load, a changed digest is refused.
    for name, tamper in (("same", False), ("changed", True)):
        shutil.copytree(os.path.join(workdir, "runs"), tmp_path / name / "runs")
        if tamper:
            run_path = tmp_path / name / "runs" / "uniform_seed0.json"
            run = json.loads(run_path.read_text())
            run["data_digests"]["docs"]["test"] = "0" * 64
            run_path.write_text(json.dumps(run))
            with pytest.raises(provenance.DataMismatch, match=r"uniform_seed0\.json: .*docs \(test\)"):
                train_and_evaluate(_config(), str(tmp_path / name), progress=False)
        else:
            assert train_and_evaluate(_config(), str(tmp_path / name), progress=False)["data_digests"] == expected


def test_every_strategy_within_naive_budget(finished):
    _, results = finished
    strategies = results["strategies"]
    naive = strategies["none"]["flops"]["total"]
    for name, entry in strategies.items():
        assert entry["within_budget"], name
        assert entry["flops"]["total"] <= naive * 1.005, name
        assert entry["flops"]["train_replay"] > 0 or name == "none"


@pytest.mark.slow
def test_resume_after_crash_gives_same_results(finished, tmp_path, monkeypatch):
    _, reference = finished
    calls = {"n": 0}
    original = train_lib.Run._record

    def crashing(self, *args, **kwargs):
        calls["n"] += self.strategy == "amr"
        if self.strategy == "amr" and calls["n"] == 7:  # amr, task 2, after its mid-task checkpoint
            raise KeyboardInterrupt("injected crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(train_lib.Run, "_record", crashing)
    workdir = str(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(_config(), workdir, progress=False)
    assert os.path.exists(os.path.join(workdir, "runs", "uniform_seed0.json"))
    assert not os.path.exists(os.path.join(workdir, "runs", "amr_seed0.json"))
    monkeypatch.setattr(train_lib.Run, "_record", original)
    resumed = train_and_evaluate(_config(), workdir, progress=False)
    for name, entry in reference["strategies"].items():
        np.testing.assert_allclose(resumed["strategies"][name]["loss_matrix"], entry["loss_matrix"], rtol=0, atol=0)
        assert resumed["strategies"][name]["flops"] == entry["flops"]


@pytest.mark.slow
def test_cli(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "experiments", "main.py"),
            f"--config={ROOT}/configs/tiny.py",
            f"--workdir={tmp_path}",
            "--config.strategies=('none','uniform')",
            "--config.train.steps_per_task=8",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "XLA_FLAGS": ""},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| uniform |" in out.stdout
    assert os.path.exists(tmp_path / "results.json")
    # stderr is a pipe, not a terminal: no progress-bar frames, one plain line per (strategy, seed, task).
    assert "\r" not in out.stderr
    task_lines = [line for line in out.stderr.splitlines() if re.search(r" seed \d+ task \d+/\d+ \(", line)]
    assert len(task_lines) == 2 * len(tiny.get_config().data.domains), out.stderr[-3000:]
    assert all(re.search(r": 8 steps in [\d.]+ s, last loss \d", line) for line in task_lines), task_lines


@pytest.mark.extended  # ~95 s; the sweeps exercise k-means, probes and MIR at benchmark scale
def test_kmeans_arms_probes_and_mir_stay_within_budget(tmp_path):
    cfg = _config()
    cfg.strategies, cfg.baseline = ("amr", "mir"), "amr"
    cfg.replay.clusters_per_task = 2  # k-means arms over the model's embeddings; reference losses are paid
    cfg.replay.probe_samples = 4  # forward-only probes every chunk, paid by trimming
    cfg.replay.mir_candidates = 2
    results = train_and_evaluate(cfg, str(tmp_path), progress=False)
    for name, entry in results["strategies"].items():
        assert entry["within_budget"], name
        assert entry["flops"]["selection"] > 0, name
        assert entry["plan"]["trimmed_rows"] > 0, name  # selection was paid for with new-task rows
        assert np.all(np.isfinite(entry["loss_matrix"]))
    assert results["strategies"]["amr"]["plan"]["clusters_per_task"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("resplit", [True, False], ids=["resplit", "control"])
def test_resplit_per_seed_gives_each_seed_its_own_split(tmp_path, resplit):
    """With data.resplit_per_seed the runner builds each seed's tasks from data seed
    data.seed + seed (different held-out rows, recorded per run); without it (the negative
    control) every seed sees the same arrays."""
    cfg = _config()
    cfg.strategies, cfg.baseline, cfg.seeds = ("none",), "", (0, 1)
    cfg.train.steps_per_task, cfg.train.eval_every = 4, 0
    cfg.data.resplit_per_seed = resplit
    results = train_and_evaluate(cfg, str(tmp_path), progress=False)
    runs = [json.load(open(tmp_path / "runs" / f"none_seed{k}.json")) for k in (0, 1)]
    same = provenance.fingerprint(runs[0]["data_digests"]) == provenance.fingerprint(runs[1]["data_digests"])
    assert same != resplit
    if resplit:
        expected = provenance.data_digests(make_tasks(cfg.data, min_examples=cfg.train.batch_size, run_seed=1))
        assert runs[1]["data_digests"] == expected
        assert set(results["data_digests"]) == {"seed0", "seed1"}
