"""Non-finite steps end to end: a run fed poisoned rows completes (skips counted), or halts on request.

The byte LM's rows are int tokens, which cannot hold a NaN, so the poison is a marker: rows
whose first byte is 0xFF (never found in UTF-8 text) get a NaN loss *and* NaN gradients from
a wrapped model loss, exactly what a corrupt float row does to a real model. They enter as
new-task rows in task 0 and come back as replay in task 1.
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amr.data import tasks as tasks_lib
from amr.models import make_model
from amr.runner import experiment
from amr.train import loop as train_lib
from configs import tiny

# End-to-end runs (a module fixture trains a whole run): the slow tier, which CI runs after the fast one.
pytestmark = pytest.mark.slow

POISON = 0xFF
POISONED_ROWS = tuple(range(5, 256, 16))  # 16 of task 0's 256 train rows; held-out rows stay clean
STEPS = 16


def _config(nonfinite="skip"):
    c = tiny.get_config()
    c.strategies, c.baseline = ("amr",), "amr"
    c.data.domains = ("docs", "headers")
    c.train.steps_per_task, c.train.eval_every, c.train.checkpoint_every = STEPS, 0, 1
    c.replay.fraction = 0.25  # 4 of 16 rows
    c.train.nonfinite = nonfinite
    return c


def _make_tasks_poisoned(*args, **kwargs):
    tasks = tasks_lib.make_tasks(*args, **kwargs)
    tasks[0].train[list(POISONED_ROWS), 0] = POISON
    return tasks


def _make_model_poisonable(model_config):
    spec = make_model(model_config)

    def loss(params, batch, key):
        nan_if_poisoned = jnp.where(batch[:, 0] == POISON, jnp.nan, 1.0)  # NaN loss and NaN gradients
        return spec.loss(params, batch, key) * nan_if_poisoned

    return spec._replace(loss=loss)


@pytest.fixture(scope="module", autouse=True)
def compiled():
    """Poisoned tasks and model, and one context and compiled strategy shared by every run here
    ('skip' and 'halt' compile the same programs); `train_and_evaluate` is otherwise untouched."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(experiment, "make_tasks", _make_tasks_poisoned)
        mp.setattr(experiment, "make_model", _make_model_poisonable)
        ctx = experiment.prepare(_config())
        strategy = train_lib.make_strategy(ctx, "amr")
        # prepare() still validates each run's config; only the context build is shared.
        mp.setattr(experiment, "make_context", lambda config, *_: dataclasses.replace(ctx, config=config))
        mp.setattr(experiment, "make_strategy", lambda _, name: strategy)
        yield ctx, strategy


@pytest.fixture(scope="module")
def skipped_run(compiled, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("skip"))
    return workdir, experiment.train_and_evaluate(_config(), workdir, progress=False)


def test_nan_batches_are_skipped_counted_and_the_run_completes(skipped_run, compiled):
    workdir, results = skipped_run
    entry = results["strategies"]["amr"]
    total_steps = 2 * STEPS
    assert 0 < entry["skipped_steps"] < total_steps
    assert np.all(np.isfinite(entry["loss_matrix"]))
    with open(os.path.join(workdir, "runs", "amr_seed0.json")) as f:
        run = json.load(f)
    assert run["skipped_steps"] == entry["skipped_steps"]
    for h in run["arm_history"]:  # the bandit's distribution stayed a distribution
        assert np.all(np.isfinite(h["probs"])) and abs(sum(h["probs"]) - 1) < 1e-5
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        train = [r for r in map(json.loads, f) if r["kind"] == "train"]
    assert sum(r["nonfinite_steps"] for r in train) == entry["skipped_steps"]
    assert any(r["nonfinite_steps"] and r["task"] == 1 for r in train), "replayed NaN rows are skipped too"

    # The final checkpoint: params and the bandit's estimates are finite, skips are in the state.
    run_obj = train_lib.Run(*compiled, 0, os.path.join(workdir, "ckpt", "amr_seed0"))
    state, _ = run_obj.ckpt.restore_latest(run_obj.template)
    run_obj.ckpt.close()
    assert int(state.skipped) == entry["skipped_steps"]
    for leaf in jax.tree.leaves(state.params):
        assert np.all(np.isfinite(leaf))
    bandit = state.replay.bandit
    assert int(np.sum(bandit.count)) > 0
    for leaf in (bandit.value, bandit.sq, bandit.exp3_est):
        assert np.all(np.isfinite(leaf))


def test_halt_stops_with_a_clear_error_and_leaves_a_resumable_workdir(skipped_run, tmp_path):
    _, reference = skipped_run
    workdir = str(tmp_path)
    with pytest.raises(FloatingPointError, match=r"non-finite loss at task 0 .*train\.nonfinite='skip'"):
        experiment.train_and_evaluate(_config("halt"), workdir, progress=False)
    assert not os.path.exists(os.path.join(workdir, ".amr.lock"))
    assert not os.path.exists(os.path.join(workdir, "runs", "amr_seed0.json"))
    resumed = experiment.train_and_evaluate(_config("skip"), workdir, progress=False)
    assert resumed["strategies"]["amr"]["loss_matrix"] == reference["strategies"]["amr"]["loss_matrix"]
    assert resumed["strategies"]["amr"]["skipped_steps"] == reference["strategies"]["amr"]["skipped_steps"]
