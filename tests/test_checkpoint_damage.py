"""Damaged checkpoints and run files: fall back to the previous good one with a warning, never get stuck."""

import dataclasses
import glob
import json
import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amr.io.checkpoint import RunCheckpoints
from amr.runner import experiment
from amr.train import loop as train_lib
from configs import tiny


def _state(offset):
    return {"w": jnp.arange(1000, dtype=jnp.float32) + offset, "rng": jax.random.key(offset), "step": jnp.int32(offset)}


def _saved(directory):
    ckpt = RunCheckpoints(str(directory))
    ckpt.save(1, _state(1), {"task": 1, "loss": [0.5, float("nan")]})
    ckpt.save(2, _state(2), {"task": 2, "loss": [0.25, 1.0]})
    ckpt.close()
    return directory


def _data_files(step_dir):
    return sorted(glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True), key=os.path.getsize)


def _truncate(step_dir):
    for p in _data_files(step_dir):
        os.truncate(p, os.path.getsize(p) // 2)


def _garbage_state(step_dir):
    rng = np.random.default_rng(0)
    for p in _data_files(step_dir):
        with open(p, "wb") as f:
            f.write(rng.bytes(os.path.getsize(p)))


def _garbage_host(step_dir):
    with open(os.path.join(step_dir, "host", "metadata"), "w") as f:
        f.write('{"task": 2, "loss": [0.2')


def _delete_manifest(step_dir):
    os.remove(os.path.join(step_dir, "state", "manifest.ocdbt"))


def _delete_state(step_dir):
    shutil.rmtree(os.path.join(step_dir, "state"))


def _flip_one_byte(step_dir):
    """A silent bit flip inside the compressed params: orbax itself restores wrong values without an error."""
    path = _data_files(step_dir)[-1]
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)


def _edit_host(step_dir):
    """Valid JSON, wrong content (a changed number): only the digest can tell."""
    path = os.path.join(step_dir, "host", "metadata")
    with open(path) as f:
        host = json.load(f)
    host["task"] = 7
    with open(path, "w") as f:
        json.dump(host, f)


@pytest.mark.parametrize(
    "damage",
    [_truncate, _garbage_state, _garbage_host, _delete_manifest, _delete_state, _flip_one_byte, _edit_host],
    ids=lambda f: f.__name__.strip("_"),
)
def test_damaged_latest_falls_back_to_previous_with_a_warning(tmp_path, caplog, damage):
    directory = _saved(tmp_path / "ckpt")
    damage(str(directory / "2"))
    ckpt = RunCheckpoints(str(directory))
    with caplog.at_level(logging.WARNING):
        state, host = ckpt.restore_latest(_state(0))
    assert host["task"] == 1 and host["loss"][0] == 0.5 and np.isnan(host["loss"][1])
    np.testing.assert_array_equal(state["w"], np.arange(1000) + 1)
    assert int(state["step"]) == 1
    np.testing.assert_array_equal(jax.random.key_data(state["rng"]), jax.random.key_data(jax.random.key(1)))
    assert "checkpoint step 2" in caplog.text and "unreadable" in caplog.text
    assert os.path.isdir(str(directory) + ".damaged/2"), "the damaged step is kept for a post-mortem"
    ckpt.save(2, _state(2), {"task": 2})  # the step number is free again
    ckpt.close()
    state, host = RunCheckpoints(str(directory)).restore_latest(_state(0))
    assert host == {"task": 2} and int(state["step"]) == 2


def test_partial_step_left_by_a_killed_save_is_ignored_and_overwritten(tmp_path, caplog):
    directory = _saved(tmp_path / "ckpt")
    partial = directory / "3.orbax-checkpoint-tmp"  # what a SIGKILL during an async save leaves
    shutil.copytree(directory / "2", partial)
    os.remove(partial / "host" / "metadata")
    ckpt = RunCheckpoints(str(directory))
    assert ckpt.manager.all_steps() == [1, 2]
    with caplog.at_level(logging.WARNING):
        state, host = ckpt.restore_latest(_state(0))
    assert host["task"] == 2 and int(state["step"]) == 2 and "unreadable" not in caplog.text
    ckpt.save(3, _state(3), {"task": 3})
    ckpt.close()
    state, host = RunCheckpoints(str(directory)).restore_latest(_state(0))
    assert host == {"task": 3} and int(state["step"]) == 3


def test_all_checkpoints_damaged_means_a_fresh_start_with_a_warning(tmp_path, caplog):
    directory = _saved(tmp_path / "ckpt")
    _garbage_host(str(directory / "1"))
    _truncate(str(directory / "2"))
    ckpt = RunCheckpoints(str(directory))
    with caplog.at_level(logging.WARNING):
        assert ckpt.restore_latest(_state(0)) is None
    assert "no readable checkpoint left" in caplog.text and "from scratch" in caplog.text
    assert ckpt.manager.all_steps() == []
    ckpt.save(1, _state(5), {"task": 0})  # not blocked by the damaged steps' numbers
    ckpt.close()
    assert RunCheckpoints(str(directory)).restore_latest(_state(0))[1] == {"task": 0}


# ------------------------------------------------------------------ end to end on a tiny run


def _config():
    cfg = tiny.get_config()
    cfg.strategies, cfg.baseline = ("none",), "none"
    cfg.data.domains = ("docs", "headers")
    cfg.train.steps_per_task, cfg.train.eval_every = 4, 0
    return cfg


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run; the reruns below reuse its context and compiled strategy (nothing recompiles)."""
    ctx = experiment.prepare(_config())
    strategy = train_lib.make_strategy(ctx, "none")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(experiment, "make_context", lambda config, *_: dataclasses.replace(ctx, config=config))
        mp.setattr(experiment, "make_strategy", lambda _, name: strategy)
        workdir = str(tmp_path_factory.mktemp("run"))
        yield workdir, experiment.train_and_evaluate(_config(), workdir, progress=False)


def test_damaged_finished_run_file_is_redone_with_a_warning(finished, caplog):
    workdir, reference = finished
    path = os.path.join(workdir, "runs", "none_seed0.json")
    with open(path, "r+") as f:
        f.truncate(os.path.getsize(path) // 2)  # a half file: not JSON
    with caplog.at_level(logging.WARNING):
        again = experiment.train_and_evaluate(_config(), workdir, progress=False)
    assert "none_seed0.json is damaged" in caplog.text and os.path.exists(path + ".damaged")
    assert again["strategies"]["none"]["loss_matrix"] == reference["strategies"]["none"]["loss_matrix"]
    with open(path) as f:
        assert json.load(f)["loss_matrix"] == reference["strategies"]["none"]["loss_matrix"]


def test_every_checkpoint_and_the_run_file_damaged_reruns_from_scratch(finished, caplog):
    workdir, reference = finished
    os.remove(os.path.join(workdir, "runs", "none_seed0.json"))
    ckpt_dir = os.path.join(workdir, "ckpt", "none_seed0")
    steps = [d for d in os.listdir(ckpt_dir) if d.isdigit()]
    assert steps
    for step in steps:
        _garbage_host(os.path.join(ckpt_dir, step))
    with caplog.at_level(logging.WARNING):
        again = experiment.train_and_evaluate(_config(), workdir, progress=False)
    assert "starts again from scratch" in caplog.text
    np.testing.assert_array_equal(
        again["strategies"]["none"]["loss_matrix"], reference["strategies"]["none"]["loss_matrix"]
    )
