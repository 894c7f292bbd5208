"""experiments/arm_mass.py maps a run's arm probabilities to the past tasks they replay, per task."""

import json
import os

import chex
import numpy as np
import pytest

from experiments import arm_mass

STEPS = 16


def _write_bench(tmp_path, first_probs_by_seed, clusters_per_task=1):
    bench = tmp_path / "subpop"
    (bench / "variants" / "amr+tail" / "runs").mkdir(parents=True)
    (bench / "runs").mkdir()
    config = {"train": {"steps_per_task": STEPS}, "replay": {"clusters_per_task": clusters_per_task}}
    (bench / "results.json").write_text(json.dumps({"config": config}))
    for seed, first in enumerate(first_probs_by_seed):
        K = 3 * clusters_per_task
        history = [
            # task 1 (steps 17..32): one past task
            {"step": 24, "probs": [1.0] + [0.0] * (K - 1)},
            {"step": 32, "probs": [1.0] + [0.0] * (K - 1)},
            # task 2 (steps 33..48): two past tasks
            {"step": 40, "probs": list(first)},
            {"step": 48, "probs": [0.5, 0.5] + [0.0] * (K - 2)},
        ]
        run = {"arm_history": history}
        (bench / "variants" / "amr+tail" / "runs" / f"amr_seed{seed}.json").write_text(json.dumps(run))
        (bench / "runs" / f"amr_seed{seed}.json").write_text(json.dumps(run))
    return str(bench)


def test_mass_per_past_task_and_fixed_start(tmp_path):
    bench = _write_bench(tmp_path, [(0.3, 0.7, 0.0), (0.3, 0.7, 0.0)])
    out = arm_mass.summarise(bench, "amr+tail")
    assert out["runs"] == 2
    chex.assert_trees_all_close(np.array(out["tasks"]["1"]["mean"]), np.array([1.0]))
    task2 = out["tasks"]["2"]
    chex.assert_trees_all_close(np.array(task2["first"]), np.array([0.3, 0.7]))
    chex.assert_trees_all_close(np.array(task2["last"]), np.array([0.5, 0.5]))
    chex.assert_trees_all_close(np.array(task2["mean"]), np.array([0.4, 0.6]))
    assert task2["seeds_at_one_start"] == 2
    assert out == arm_mass.summarise(bench, "amr")  # plain entries read runs/


def test_start_from_data_is_not_counted_as_fixed(tmp_path):
    """Negative control: seeds starting a task at different ratios are not reported as one fixed start."""
    bench = _write_bench(tmp_path, [(0.3, 0.7, 0.0), (0.6, 0.4, 0.0)])
    assert arm_mass.summarise(bench, "amr+tail")["tasks"]["2"]["seeds_at_one_start"] == 1


def test_clusters_sum_to_their_task(tmp_path):
    bench = _write_bench(tmp_path, [(0.1, 0.2, 0.3, 0.4, 0.0, 0.0)], clusters_per_task=2)
    chex.assert_trees_all_close(np.array(arm_mass.summarise(bench, "amr")["tasks"]["2"]["first"]), np.array([0.3, 0.7]))


def test_missing_entry_names_it(tmp_path):
    bench = _write_bench(tmp_path, [(0.3, 0.7, 0.0)])
    with pytest.raises(SystemExit, match="uniform\\+tail"):
        arm_mass.summarise(bench, "uniform+tail")
    assert os.path.isdir(bench)
