"""`make_bandit(new_arms=...)`: what a task's new arms do to what the bandit learned.

'keep' carries the estimates over and makes the unseen arm optimistic (a fixed newest-first start);
'reset' restarts from `init`, so the first draws after a task boundary are uniform over the arms."""

import chex
import jax
import numpy as np
import pytest

from amr.replay import policies as replay_lib
from amr.replay import registry
from amr.replay.bandit import NEW_ARMS, make_bandit
from configs import tiny
from tests.support import bandit_keys

K = 4


def _two_arms_seen_then_a_third(new_arms, jit):
    """Arms 0 and 1 observed with different rewards, then arm 2 becomes active (a task arrived)."""
    b = make_bandit(K, new_arms=new_arms)
    set_active = jax.jit(b.set_active) if jit else b.set_active
    state = b.init(np.array([True, True, False, False]))
    state = b.observe(state, np.array([0, 1, 0, 1], np.int32), np.array([0.1, 2.0, 0.2, 2.2], np.float32))
    before = state
    state = set_active(state, np.array([True, True, True, False]))
    return b, before, state


@pytest.mark.parametrize("jit", [False, True])
def test_reset_starts_a_task_uniform_over_the_active_arms(jit):
    b, _, state = _two_arms_seen_then_a_third("reset", jit)
    chex.assert_trees_all_close(b.probs(state), np.array([1 / 3, 1 / 3, 1 / 3, 0.0], np.float32), atol=1e-6)
    assert int(state.t) == 0 and int(state.count.sum()) == 0
    chex.assert_trees_all_equal(state, b.init(np.array([True, True, True, False])))


@pytest.mark.parametrize("jit", [False, True])
def test_keep_starts_a_task_at_the_optimism_ratios(jit):
    """Negative control: without the reset the start is far from uniform, newest arm first."""
    b, before, state = _two_arms_seen_then_a_third("keep", jit)
    p = np.asarray(b.probs(state))
    assert p[2] > p[1] > p[0] and p[2] > 0.5, p
    chex.assert_trees_all_equal(state.value, before.value)  # estimates carried over
    assert int(state.t) == int(before.t) == 4


def test_reset_keeps_the_state_when_the_active_set_does_not_change():
    b, before, _ = _two_arms_seen_then_a_third("reset", jit=False)
    same = b.set_active(before, np.array(before.active))
    chex.assert_trees_all_equal(same, before)


def test_reset_set_active_traces_once():
    b = make_bandit(K, new_arms="reset")
    chex.clear_trace_counter()
    set_active = jax.jit(chex.assert_max_traces(b.set_active, n=1))
    state = b.init(np.array([True, False, False, False]))
    for n in (2, 3, 4):  # more arms each time: same shapes, no retrace (a second trace would raise)
        state = set_active(state, np.arange(K) < n)
    chex.assert_shape(state.value, (K,))
    assert bool(state.active.all())


def test_bogus_new_arms_is_refused_and_names_the_key():
    bandit_keys.assert_bogus_refused("new_arms", K)


def test_every_rule_passes_and_old_configs_default_to_keep():
    assert registry.NEW_ARMS == NEW_ARMS == ("keep", "reset")
    bandit_keys.assert_every_choice_passes("new_arms", NEW_ARMS, "keep")


@pytest.mark.parametrize("new_arms,uniform", [("reset", True), ("keep", False)])
def test_config_key_reaches_the_bandit_through_add_task(new_arms, uniform):
    """The trainer's path: `bandit=dict(cfg.bandit)` into make_replay, a second task through add_task."""
    bandit_cfg = dict(tiny.get_config().bandit, new_arms=new_arms)
    policy = replay_lib.make_replay("amr", max_arms=3, capacity=30, reward="loss", bandit=bandit_cfg)
    state = policy.init()
    for task in range(2):
        state = policy.add_task(state, 10 * task + np.arange(10), np.zeros(10, np.int32), task, num_clusters=1)
    state = policy.observe(state, np.array([0, 1, 10, 11]), np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 2.0, 2.1]))
    state = policy.add_task(state, 20 + np.arange(10), np.zeros(10, np.int32), 2, num_clusters=1)
    p = np.asarray(policy.arm_probs(state))
    assert np.allclose(p, 1 / 3, atol=1e-6) == uniform, p
