"""Building a bandit (`amr.replay.bandit.make_bandit`, the optax-style factories of
`amr.replay.bandit_policies`): bad arguments and shapes are refused naming the culprit, the factories are
the named pieces, and the API's types and shapes. How it behaves: test_bandit.py."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amr.replay import bandit_policies as bp
from amr.replay.bandit import Bandit, BanditState, make_bandit

# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(num_arms=0), "num_arms"),
        (dict(num_arms=-3), "num_arms"),
        (dict(num_arms=2.0), "num_arms"),
        (dict(tau=0.0), "tau"),
        (dict(tau=-1.0), "tau"),
        (dict(alpha=0.0), "alpha"),
        (dict(alpha=1.5), "alpha"),
        (dict(alpha=float("nan")), "alpha"),
        (dict(window=0), "window"),
        (dict(window=0, estimator="window"), "window"),
        (dict(epsilon=-0.1), "epsilon"),
        (dict(epsilon=1.1), "epsilon"),
        (dict(estimator="mean"), "estimator"),
        (dict(policy="softmax"), "policy"),
        (dict(normalize="rank"), "normalize"),
        (dict(ucb_c=-1.0), "ucb_c"),
        (dict(exp3_alpha=1.0), "exp3_alpha"),
        (dict(optimism=float("inf")), "optimism"),
    ],
)
def test_make_bandit_rejects_bad_arguments(kwargs, name):
    kwargs = {"num_arms": 4, **kwargs}
    with pytest.raises(ValueError, match=name):
        make_bandit(**kwargs)


def test_bad_shapes_are_rejected():
    b = make_bandit(4)
    with pytest.raises(ValueError, match="active"):
        b.init(np.ones(3, bool))
    state = b.init(np.ones(4, bool))
    with pytest.raises(ValueError, match="active"):
        b.set_active(state, np.ones(5, bool))
    with pytest.raises(ValueError, match="arm_ids"):
        b.observe(state, np.zeros(3, np.int32), np.zeros(2))
    with pytest.raises(ValueError, match="arm_id"):
        b.observe_one(state, np.zeros(2, np.int32), 1.0)


def test_api_shape():
    b = make_bandit(3)
    assert isinstance(b, Bandit) and isinstance(b.init(np.ones(3, bool)), BanditState)
    state = b.init([True, False, True])
    chex.assert_shape([state.value, state.sq, state.count, state.exp3_est, state.active], (3,))
    assert state.t.shape == () and state.t.dtype == jnp.int32 and state.active.dtype == jnp.bool_


# --------------------------------------------------------------------------- optax-style factories


@pytest.mark.parametrize(
    "pieces, names",
    [
        (dict(estimator=bp.ema(0.2), policy=bp.boltzmann(0.5, 0.2)), dict(alpha=0.2, tau=0.5, epsilon=0.2)),
        (dict(estimator=bp.window(3), policy=bp.ucb(2.0)), dict(estimator="window", window=3, policy="ucb", ucb_c=2.0)),
        (dict(policy=bp.exp3(0.5)), dict(policy="exp3", exp3_alpha=0.5)),
        (dict(policy=bp.epsilon_greedy(0.3)), dict(policy="epsilon_greedy", epsilon=0.3)),
        (dict(policy=bp.thompson()), dict(policy="thompson")),
    ],
)
def test_factories_are_the_named_pieces(pieces, names):
    active = np.array([1, 1, 1, 0, 1], bool)
    arms = jnp.array([0, 1, 2, 4, 0, 1, 3], jnp.int32)
    rewards = jnp.array([0.3, 1.2, -0.4, 2.0, 0.1, 0.9, 5.0])

    def run(**kw):
        b = make_bandit(5, **kw)
        s = b.observe(b.init(active), arms, rewards)
        return np.asarray(b.probs(s)), np.asarray(b.sample(s, jax.random.key(0), 9))

    chex.assert_trees_all_equal(run(**pieces), run(**names))
    assert not np.array_equal(run(**pieces)[0], run(policy="uniform")[0])  # negative control


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: bp.boltzmann(tau=0.0), "tau"),
        (lambda: bp.boltzmann(epsilon=1.5), "epsilon"),
        (lambda: bp.ema(0.0), "alpha"),
        (lambda: bp.window(0), "window"),
        (lambda: bp.ucb(-1.0), "ucb_c"),
        (lambda: bp.exp3(1.0), "exp3_alpha"),
    ],
)
def test_factories_validate_their_arguments(make, name):
    with pytest.raises(ValueError, match=name):
        make()
