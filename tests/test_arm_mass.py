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


def _write_scheduled(tmp_path, replay):
    """One seed, task 2 in 4 chunks of 4 steps with probabilities p_j after chunk j, under `replay`."""
    bench = tmp_path / "styles"
    runs = bench / "variants" / "amr+tail" / "runs"
    runs.mkdir(parents=True)
    config = {
        "train": {"steps_per_task": 16, "chunk_size": 4, "batch_size": 32},
        "replay": {"clusters_per_task": 1, "fraction": 1 / 16, **replay},
    }
    (bench / "results.json").write_text(json.dumps({"config": {**config, "replay": {"clusters_per_task": 1}}}))
    (runs.parent / "results.json").write_text(json.dumps({"config": config}))  # the entry's own config wins
    probs = [[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.2, 0.8, 0.0], [0.5, 0.5, 0.0]]
    history = [{"step": 32 + 4 * (j + 1), "probs": p} for j, p in enumerate(probs)]
    (runs / "amr_seed0.json").write_text(json.dumps({"arm_history": history}))
    return str(bench)


def test_replayed_mass_follows_the_schedule_rows():
    """`tail` at 1/16 between 0 and 8/32 replays only in the last of 4 chunks (rows 0, 0, 0, 8), whose draws come
    from the probabilities after chunk 2: `replayed` is those, while `mean` averages all four."""
    chex.assert_trees_all_close(
        arm_mass.replay_rows_per_chunk(
            {
                "train": {"steps_per_task": 16, "chunk_size": 4, "batch_size": 32},
                "replay": {
                    "fraction": 1 / 16,
                    "share": "schedule",
                    "share_schedule": "tail",
                    "share_min": 0.0,
                    "share_max": 0.25,
                },
            }
        ),
        np.array([0, 0, 0, 8]),
    )


def test_replayed_mass_weights_chunks_by_rows(tmp_path):
    tail = {"share": "schedule", "share_schedule": "tail", "share_min": 0.0, "share_max": 0.25}
    task2 = arm_mass.summarise(_write_scheduled(tmp_path / "tail", tail), "amr+tail")["tasks"]["2"]
    chex.assert_trees_all_close(np.array(task2["replayed"]), np.array([0.2, 0.8]))
    chex.assert_trees_all_close(np.array(task2["mean"]), np.array([0.6, 0.4]))
    # a fixed share draws 2 rows in every chunk: the records after chunks 0..2 feed chunks 1..3 alike
    fixed = arm_mass.summarise(_write_scheduled(tmp_path / "fixed", {"share": "fixed"}), "amr+tail")["tasks"]["2"]
    chex.assert_trees_all_close(
        np.array(fixed["replayed"]), np.array([19 / 30, 11 / 30]), atol=1e-3
    )  # printed to 3 decimals


def test_replayed_mass_is_null_when_the_run_chose_its_rows(tmp_path):
    """Negative control: an adaptive share's rows are not known from the config, so no weighting is claimed."""
    ctl = {"share": "controller", "share_min": 0.0, "share_max": 0.125}
    assert arm_mass.summarise(_write_scheduled(tmp_path, ctl), "amr+tail")["tasks"]["2"]["replayed"] is None
    assert arm_mass.summarise(_write_bench(tmp_path, [(0.3, 0.7, 0.0)]), "amr")["tasks"]["2"]["replayed"] is None
