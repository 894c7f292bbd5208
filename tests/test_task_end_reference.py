"""The 'task_end' loss-increase reference: a row keeps its training loss minus its chunk's mean (a residual), and
its task's end-of-task training loss is added when the task becomes arms. Under the 'sample' reference a task whose
loss was still falling fast (the first, from scratch) gets references above its task-end losses, so its forgetting
reads low; the property test checks that 'task_end' removes that bias and that 'sample' has it (negative control)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amr.replay import policies
from amr.replay.policy_base import anchor_sample_refs
from amr.runner import config_check
from configs import tiny


def _policy(reference, capacity=12):
    return policies.make_replay("amr", max_arms=4, capacity=capacity, reference=reference)


def test_new_rows_keep_their_loss_over_their_chunk_mean():
    ids, losses = jnp.array([0, 1, 2, 5]), jnp.array([3.0, 2.0, 1.0, jnp.nan])
    for record in (_policy("task_end").record_new, jax.jit(_policy("task_end").record_new)):  # eager and jit
        refs = record(_policy("task_end").init(), ids, losses).sample_ref
        chex.assert_shape(refs, (12,))
        chex.assert_trees_all_close(refs[:3], jnp.array([1.0, 0.0, -1.0]))  # the NaN row counts in no mean
        assert np.isnan(np.asarray(refs[3:])).all()
    sample = _policy("sample")  # negative control: 'sample' keeps the losses themselves
    chex.assert_trees_all_close(sample.record_new(sample.init(), ids, losses).sample_ref[:3], losses[:3])
    replayed = _policy("task_end").record_new(_policy("task_end").init(), ids, losses, replayed=True)
    assert np.isnan(np.asarray(replayed.sample_ref)).all()  # replayed rows never move a 'task_end' reference


def test_the_anchor_shifts_only_the_finished_tasks_rows():
    p = _policy("task_end")
    state = p.record_new(p.init(), jnp.arange(8), jnp.arange(8, dtype=jnp.float32))  # residuals -3.5 .. 3.5
    state = p.add_task(state, np.arange(4), np.zeros(4, int), 0, anchor=2.0)
    refs = np.asarray(state.sample_ref)
    np.testing.assert_allclose(refs[:4], np.arange(4) - 3.5 + 2.0)
    np.testing.assert_allclose(refs[4:8], np.arange(4, 8) - 3.5)  # task 1's rows: still residuals
    with pytest.raises(ValueError, match="anchor: the 'task_end' reference needs"):
        p.add_task(state, np.arange(4, 8), np.zeros(4, int), 1)
    sample = _policy("sample")
    with pytest.raises(ValueError, match="anchor: only the 'task_end' reference"):
        sample.add_task(sample.init(), np.arange(4), np.zeros(4, int), 0, anchor=2.0)
    nan_anchor = anchor_sample_refs(jnp.zeros(3), [0, 1, 7], float("nan"))  # id 7 is outside: ignored
    assert np.isnan(np.asarray(nan_anchor[:2])).all() and float(nan_anchor[2]) == 0.0


@settings(max_examples=20, deadline=None)
@given(
    drop=st.floats(0.5, 3.0),  # how far the task's training loss falls over the task
    forgetting=st.floats(0.0, 0.5),  # how much every row's loss rose after the task
    seed=st.integers(0, 2**16),
)
def test_task_end_rewards_read_the_forgetting_and_sample_rewards_do_not(drop, forgetting, seed):
    """A task of 64 rows trained over 8 chunks whose level falls linearly by `drop`; each row has its own
    difficulty and is last trained in a random chunk. After the task every row's loss is its task-end loss
    (end level + difficulty) plus `forgetting`: the reward should read `forgetting`."""
    rng = np.random.default_rng(seed)
    chunks, rows = 8, 64
    level = 2.0 + drop * (1 - np.arange(chunks) / (chunks - 1))  # falls to 2.0 at the last chunk
    difficulty = rng.normal(0, 0.1, rows)
    last_chunk = rng.integers(0, chunks, rows)
    last_chunk[:chunks] = np.arange(chunks)  # every chunk trains some rows
    rewards = {}
    for reference in ("task_end", "sample"):
        p = _policy(reference, capacity=rows)
        state = p.init()
        for c in range(chunks):
            ids = np.flatnonzero(last_chunk == c)
            chunk_rows = level[c] + difficulty[ids]
            state = p.record_new(state, jnp.asarray(ids), jnp.asarray(chunk_rows, jnp.float32))
        anchor = (
            {"anchor": level[-1] + np.mean(difficulty[last_chunk == chunks - 1])} if reference == "task_end" else {}
        )
        state = p.add_task(state, np.arange(rows), np.zeros(rows, int), 0, **anchor)
        now = level[-1] + difficulty + forgetting
        arms = jnp.zeros(rows, jnp.int32)
        rewards[reference] = float(
            jnp.mean(p.rewards(state, arms, jnp.asarray(now, jnp.float32), None, jnp.arange(rows)))
        )
    bias = drop * np.mean(1 - last_chunk / (chunks - 1))  # how far 'sample' references sit above the task end
    assert abs(rewards["task_end"] - forgetting) < 0.15  # chunk means carry row-sampling noise (sd ~0.04)
    assert rewards["sample"] == pytest.approx(forgetting - bias, abs=1e-4)  # negative control: biased low
    assert rewards["sample"] < rewards["task_end"]


def test_the_config_accepts_task_end_and_benefit_refuses_it():
    cfg = tiny.get_config()
    cfg.replay.reference = "task_end"
    config_check.validate(cfg, 1)
    cfg.replay.reward = "benefit"
    with pytest.raises(config_check.ConfigError, match="replay.reference"):
        config_check.validate(cfg, 1)
    cfg.replay.reward, cfg.replay.reference = "loss_increase", "task-end"
    with pytest.raises(config_check.ConfigError, match="replay.reference: expected auto, sample, visit, task_end"):
        config_check.validate(cfg, 1)
