"""The free marginal-benefit reward (`replay.reward="benefit"`, `amr.replay.benefit`, docs/REWARDS.md):
the per-arm EMA least-squares slope of forgetting drift on replay intensity, its shrinkage, the
policy's observe, the chunk under the transfer guard, config validation, checkpoints and cost."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amr.compute.plan import plan_strategy
from amr.io.checkpoint import state_digest
from amr.replay import benefit, clustering
from amr.replay import policies as replay_lib
from amr.runner import config_check
from amr.runner.experiment import prepare
from amr.train import chunk as step_lib
from amr.train.state import TrainState
from amr.train.strategy import make_strategy
from amr.train.streams import next_chunk, task_stream
from configs import tiny
from configs.base import get_base_config
from tests.support import traced_chunk
from tests.support.checkpoint_round_trip import round_trip
from tests.support.costs import LinearCosts

K, CHUNK, ALPHA = 3, 4, 0.3
JITS = pytest.mark.parametrize("jit", [False, True], ids=["nojit", "jit"])


def _numpy_benefit(steps, levels_TxK, replayed_TxK, alpha, prior):
    """NumPy reference, written from the definition: per arm the (x, d) pairs of consecutive
    observations, EMA weights (the first pair initialises), the weighted least-squares slope, and
    the shrinkage toward the pooled within-arm slope by `prior` pseudo-pairs at the pooled variance."""
    last, seen_at, count = [np.nan] * K, [0] * K, [0] * K
    pairs = [[] for _ in range(K)]
    for t, lv, rp in zip(steps, levels_TxK, replayed_TxK):
        for a in range(K):
            observed = np.isfinite(lv[a]) and (np.isnan(last[a]) or t > seen_at[a])
            if observed and np.isfinite(last[a]):
                dt = t - seen_at[a]
                pairs[a].append((count[a] / dt, (lv[a] - last[a]) / dt))
            if observed:
                last[a], seen_at[a], count[a] = lv[a], t, 0
            count[a] += rp[a]
    sxx, sxd, n_eff = np.zeros(K), np.zeros(K), np.zeros(K)
    for a in range(K):
        if not pairs[a]:
            continue
        x, d = np.array(pairs[a], np.float64).T
        n = len(x)
        w = np.array([(1 - alpha) ** (n - 1)] + [alpha * (1 - alpha) ** (n - 1 - i) for i in range(1, n)])
        mx, md = w @ x, w @ d
        n_eff[a] = 1.0 / np.sum(w**2)
        sxx[a], sxd[a] = n_eff[a] * (w @ (x - mx) ** 2), n_eff[a] * (w @ ((x - mx) * (d - md)))
    pooled = sxd.sum() / sxx.sum() if sxx.sum() > 1e-12 else 0.0
    lam = prior * sxx.sum() / max(n_eff.sum(), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(sxx + lam > 1e-12, (sxd + lam * pooled) / (sxx + lam), pooled)
    return np.where([len(p) > 0 for p in pairs], -slope, np.nan)


def _random_sequence(seed, T=14):
    """Steps (some repeated: ignored), levels with NaN gaps (arm not observed), replayed counts."""
    rng = np.random.default_rng(seed)
    steps = np.cumsum(rng.choice([0, CHUNK, 2 * CHUNK], size=T)).astype(np.int32)
    levels = rng.normal(0.5, 0.3, size=(T, K)).astype(np.float32)
    levels[rng.random((T, K)) < 0.3] = np.nan
    replayed = rng.integers(0, 9, size=(T, K)).astype(np.int32)
    return steps, levels, replayed


def _run(observe, steps, levels, replayed):
    state = benefit.init(K)
    for t, lv, rp in zip(steps, levels, replayed):
        state = observe(state, lv, rp, t)
    return state


def _observe(jit):
    fn = lambda s, lv, rp, t: benefit.observe(s, lv, rp, t, ALPHA)  # noqa: E731
    return jax.jit(fn) if jit else fn


_JITTED_OBSERVE = _observe(True)


@JITS
@pytest.mark.parametrize("prior", [0.0, 2.0, 50.0])
def test_estimate_equals_the_numpy_weighted_least_squares_slope(prior, jit):
    steps, levels, replayed = _random_sequence(0)
    state = _run(_observe(jit), steps, levels, replayed)
    estimate = (jax.jit(benefit.estimate, static_argnums=(1, 2)) if jit else benefit.estimate)(state, prior, ALPHA)
    chex.assert_shape(estimate, (K,))
    expected = _numpy_benefit(steps, levels, replayed, ALPHA, prior)
    assert np.all(np.isfinite(expected)), expected  # every arm has pairs: the comparison is not vacuous
    chex.assert_trees_all_close(estimate, expected.astype(np.float32), rtol=2e-4, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), prior=st.sampled_from([0.0, 1.0, 8.0]))
def test_estimate_matches_numpy_on_any_sequence(seed, prior):
    steps, levels, replayed = _random_sequence(seed)
    state = _run(_JITTED_OBSERVE, steps, levels, replayed)
    expected = _numpy_benefit(steps, levels, replayed, ALPHA, prior)
    got = np.asarray(benefit.estimate(state, prior, ALPHA))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))  # NaN exactly for arms without a pair
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-4)


def test_the_numpy_reference_can_fail():
    """Negative control of the comparison: a wrong EMA rate or a missed observation changes the estimate."""
    steps, levels, replayed = _random_sequence(0)
    state = _run(_observe(False), steps, levels, replayed)
    got = np.asarray(benefit.estimate(state, 0.0, ALPHA))
    assert not np.allclose(got, _numpy_benefit(steps, levels, replayed, 0.5, 0.0), rtol=2e-4, atol=1e-5)
    dropped = levels.copy()
    dropped[1] = np.nan  # step 12: a real observation of arms 0 and 2
    assert not np.allclose(got, _numpy_benefit(steps, dropped, replayed, ALPHA, 0.0), rtol=2e-4, atol=1e-5)


def _structural_sequence(slope_K, seed=0, T=60, noise=0.002):
    """Arms replayed a random number of rows every chunk; each interval's drift is
    0.05 + slope_a * x + noise, with x the interval's intensity (rows per step)."""
    rng = np.random.default_rng(seed)
    steps = np.arange(T, dtype=np.int32) * CHUNK
    replayed = rng.integers(0, 12, size=(T, K)).astype(np.int32)
    levels = np.zeros((T, K), np.float32)
    for k in range(1, T):
        x = replayed[k - 1] / CHUNK
        levels[k] = levels[k - 1] + CHUNK * (0.05 + np.asarray(slope_K) * x + noise * rng.normal(size=K))
    return steps, levels, replayed


def test_drift_independent_of_intensity_gives_no_benefit_and_the_sign_follows_the_dependency():
    slopes = np.array([-0.02, -0.01, 0.0])  # arm 2: drift does not depend on intensity
    got = np.asarray(benefit.estimate(_run(_JITTED_OBSERVE, *_structural_sequence(slopes)), 0.0, ALPHA))
    np.testing.assert_allclose(got, -slopes, atol=2e-3)  # benefit = minus the slope, ~0 for arm 2
    flipped = np.asarray(benefit.estimate(_run(_JITTED_OBSERVE, *_structural_sequence(-slopes)), 0.0, ALPHA))
    np.testing.assert_allclose(flipped, slopes, atol=2e-3)
    assert got[0] > 0.015 and flipped[0] < -0.015 and abs(got[2]) < 2e-3
    # with shrinkage the independent arm is pulled toward the pooled slope (by design), the signs still follow
    shrunk = np.asarray(benefit.estimate(_run(_JITTED_OBSERVE, *_structural_sequence(slopes)), 2.0, ALPHA))
    assert shrunk[0] > shrunk[1] > shrunk[2] and 0 < shrunk[2] - got[2] < 0.01 - got[2]


def test_an_arm_whose_intensity_never_varies_takes_the_pooled_slope():
    steps, levels, replayed = _structural_sequence(np.array([-0.02, -0.02, -0.02]))
    replayed[:, 2] = 4  # arm 2: constant intensity, its own slope is undefined
    state = _run(_JITTED_OBSERVE, steps, levels, replayed)
    got = np.asarray(benefit.estimate(state, 0.0, ALPHA))
    assert float(state.var_x[2]) == 0.0
    pooled = _numpy_benefit(steps, levels, replayed, ALPHA, 1e9)[0]  # an overwhelming prior: every arm pooled
    np.testing.assert_allclose(got[2], pooled, rtol=1e-3)
    np.testing.assert_allclose(got[2], 0.02, atol=2e-3)


def test_unobserved_or_repeated_observations_leave_the_state_unchanged():
    steps, levels, replayed = _random_sequence(1)
    state = _run(_JITTED_OBSERVE, steps, levels, replayed)
    nothing = np.full((K,), np.nan, np.float32)
    chex.assert_trees_all_equal(_JITTED_OBSERVE(state, nothing, np.zeros(K, np.int32), steps[-1] + CHUNK), state)
    # arms last seen at step `last` ignore a second observation at that same step (dt = 0)
    last = int(np.max(state.seen_at))
    at_last = np.asarray(state.seen_at) == last
    same_step = _JITTED_OBSERVE(state, np.full((K,), 9.0, np.float32), np.zeros(K, np.int32), last)
    assert at_last.any()
    chex.assert_trees_all_equal(
        jax.tree.map(lambda x: np.asarray(x)[at_last], same_step), jax.tree.map(lambda x: np.asarray(x)[at_last], state)
    )
    # negative control: a finite level later on does change it
    moved = _JITTED_OBSERVE(state, np.full((K,), 9.0, np.float32), np.zeros(K, np.int32), last + CHUNK)
    assert np.all(np.asarray(moved.level) == 9.0) and np.all(np.asarray(moved.pairs) >= np.asarray(state.pairs))


# ---------------------------------------------------------------- through the replay policy


def _policy(**kw):
    return replay_lib.make_replay("amr", max_arms=4, capacity=40, reward="benefit", **kw)


def _policy_state(policy):
    state = policy.init()
    for t in range(3):  # arms 0..2 active, arm 3 inactive
        state = policy.add_task(state, np.arange(10 * t, 10 * t + 10), np.zeros(10, np.int32), t)
    return policy.record_new(state, jnp.arange(30), jnp.ones(30))


def _rows(seed, n=12):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 30, n).astype(np.int32)
    return ids, (ids // 10).astype(np.int32), (1.0 + rng.random(n)).astype(np.float32)


@JITS
def test_policy_observe_is_level_and_counts_then_the_estimator(jit):
    policy = _policy(bandit=dict(aggregate="segment"))
    observe = jax.jit(policy.observe) if jit else policy.observe
    state = expected = _policy_state(policy)
    for c in range(4):
        ids, arms, losses = _rows(c)
        state = observe(state, ids, arms, losses, step=CHUNK * c)
        level, counts = np.full(4, np.nan, np.float32), np.zeros(4, np.int32)
        for a in range(3):
            level[a], counts[a] = (losses[arms == a] - 1.0).mean() if np.any(arms == a) else np.nan, np.sum(arms == a)
        expected = expected.replace(benefit=benefit.observe(expected.benefit, level, counts, CHUNK * c, 0.2))
    chex.assert_trees_all_close(state.benefit, expected.benefit, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(state.benefit.pairs[:3]) == 3) and int(state.benefit.pairs[3]) == 0
    np.testing.assert_array_equal(state.bandit.count, [3, 3, 3, 0])  # one bandit step per arm that gained a pair
    est = benefit.estimate(state.benefit, 2.0, 0.2)
    assert np.all(np.isfinite(np.asarray(est[:3])))


def test_masked_nan_and_inactive_rows_leave_the_policy_state_unchanged():
    policy = _policy()
    state = _policy_state(policy)
    for c in range(2):
        state = policy.observe(state, *_rows(c), step=CHUNK * c)
    ids = np.array([0, 35, 12, 5, 25], np.int32)
    arms = np.array([-1, 3, 4, 0, 2], np.int32)  # masked, inactive, out of range, then two NaN losses
    losses = np.array([1.0, 1.0, 1.0, np.nan, np.nan], np.float32)
    chex.assert_trees_all_equal(policy.observe(state, ids, arms, losses, step=99), state)
    # negative control: one valid row does change it
    changed = policy.observe(state, ids, arms, np.array([1, 1, 1, 1.5, np.nan], np.float32), step=99)
    assert int(changed.benefit.seen_at[0]) == 99 and int(changed.bandit.count[0]) == int(state.bandit.count[0]) + 1


def test_rows_without_a_reference_count_as_replayed_but_not_observed():
    policy = _policy()
    state = policy.add_task(policy.init(), np.arange(10), np.zeros(10, np.int32), 0)  # no record_new: refs NaN
    state = policy.observe(state, np.arange(3), np.zeros(3, np.int32), np.ones(3, np.float32), step=0)
    assert np.isnan(float(state.benefit.level[0])) and int(state.benefit.replayed[0]) == 3


def test_benefit_needs_the_step_and_the_sample_reference():
    policy = _policy()
    with pytest.raises(ValueError, match="step"):
        policy.observe(_policy_state(policy), *_rows(0))
    with pytest.raises(ValueError, match="reference"):
        _policy(reference="visit")
    with pytest.raises(ValueError, match="benefit_alpha"):
        _policy(benefit_alpha=0.0)
    with pytest.raises(ValueError, match="benefit_prior"):
        _policy(benefit_prior=-1.0)
    assert policy.needs_step and not policy.needs_loss_after
    assert not replay_lib.make_replay("amr", max_arms=4, capacity=40).needs_step  # negative control


def test_other_rewards_keep_their_state_leaves_and_checkpoint_paths():
    """No 'benefit' leaf outside the benefit reward: older checkpoints of every other policy still restore."""
    for reward in ("loss", "loss_increase", "marginal"):
        state = replay_lib.make_replay("amr", max_arms=4, capacity=40, reward=reward).init()
        paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(state)]
        assert state.benefit is None and not any("benefit" in p for p in paths)
        assert paths[-2:] == [".ref_loss", ".sample_ref"]
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(_policy().init())]
    assert ".benefit.cov_xd" in paths  # negative control: the benefit reward does keep its moments


def test_benefit_state_is_checkpointed_and_restored(tmp_path):
    policy = _policy()
    state = _policy_state(policy)
    for c in range(3):
        state = policy.observe(state, *_rows(c), step=CHUNK * c)
    restored, _ = round_trip(str(tmp_path / "ckpt"), state, policy.init())
    chex.assert_trees_all_equal(restored, state)
    assert int(restored.benefit.pairs[0]) == 2
    other = state.replace(benefit=state.benefit.replace(pairs=state.benefit.pairs + 1))
    assert state_digest(other, {"task": 0}) != state_digest(state, {"task": 0})  # the digest covers the moments


# ---------------------------------------------------------------- config and cost


def _cfg(**replay):
    cfg = get_base_config()
    cfg.replay.reward = "benefit"
    for k, v in replay.items():
        cfg.replay[k] = v
    return cfg


@pytest.mark.parametrize(
    "key,value",
    [
        ("reward", "benefits"),
        ("benefit_alpha", 0.0),
        ("benefit_alpha", 1.5),
        ("benefit_prior", -1.0),
        ("benefit_prior", float("inf")),
        ("reference", "visit"),
        ("probe_samples", 8),
    ],
)
def test_config_check_rejects_bad_values_naming_the_key(key, value):
    config_check.validate(_cfg(), 1)  # negative control: the valid config passes
    with pytest.raises(config_check.ConfigError, match=rf"^replay\.{key}: .*{value!r}"):
        config_check.validate(_cfg(**{key: value}), 1)


def test_the_plan_charges_nothing_for_benefit_unlike_marginal():
    plans = {
        r: plan_strategy(_cfg(reward=r), "amr", LinearCosts(), 1, max_task_rows=1024)
        for r in ("loss_increase", "benefit", "marginal")
    }
    assert plans["benefit"] == plans["loss_increase"]
    assert plans["benefit"].chunk_selection_flops == 0.0 and plans["benefit"].trimmed_rows == 0
    # negative control: the paid 'marginal' reward is charged its post-update forward pass and trims
    assert plans["marginal"].chunk_selection_flops > 0 and plans["marginal"].trimmed_rows > 0


# ---------------------------------------------------------------- inside the chunk


def _tiny(reward, devices=2):
    cfg = tiny.get_config()
    cfg.mesh.num_devices = devices
    cfg.strategies, cfg.baseline = ("amr",), ""
    cfg.replay.reward = reward
    cfg.bandit.aggregate = "segment"
    return cfg


def _add_arms(ctx, policy, replay, t):
    """Task t's rows become an arm, with a 'sample' reference (as if trained on as new data at loss 1)."""
    n = len(ctx.tasks[t].train)
    ids = ctx.offsets[t] + np.arange(n)
    replay = policy.add_task(replay, ids, clustering.per_task_labels(n), t, None, num_clusters=1)
    return policy.record_new(replay, jnp.asarray(ids, jnp.int32), jnp.ones(n, jnp.float32))


def test_chunk_with_benefit_makes_no_host_transfers_and_traces_once():
    """The pattern of tests/test_transfer_guard.py with reward='benefit' (segment aggregation)."""
    ctx = prepare(_tiny("benefit"))
    strategy = make_strategy(ctx, "amr")
    plan, cfg = strategy.plan, ctx.config
    chunk, traces = traced_chunk.counted_chunk(ctx, strategy)
    policy = strategy.policy
    state = strategy.init_state(0)
    state = step_lib.replicate(ctx.mesh, state.replace(replay=_add_arms(ctx, policy, state.replay, 0)))
    stream = task_stream(ctx.tasks[-1], int(ctx.offsets[-1]), plan.new_batch, 0, len(ctx.tasks) - 1)
    batches = [next_chunk(stream, cfg.train.chunk_size) for _ in range(5)]
    on_device = [tuple(step_lib.shard_new_batches(ctx.mesh, x) for x in c) for c in batches]

    state, _ = chunk(state, *on_device[0], ctx.memory)  # compile outside the guard
    with jax.transfer_guard("disallow"):
        for new, ids in on_device[1:3]:
            state, metrics = chunk(state, new, ids, ctx.memory)
        jax.block_until_ready((state, metrics))
    b = state.replay.benefit
    assert int(b.pairs[0]) == 2 and int(b.seen_at[0]) == 2 * cfg.train.chunk_size  # chunks at steps 0, 4, 8
    assert int(state.replay.bandit.count[0]) == 2 and np.isfinite(float(state.replay.bandit.value[0]))

    state = state.replace(replay=step_lib.replicate(ctx.mesh, _add_arms(ctx, policy, state.replay, 1)))
    with jax.transfer_guard("disallow"):
        for new, ids in on_device[3:]:
            state, metrics = chunk(state, new, ids, ctx.memory)
        jax.block_until_ready((state, metrics))
    assert len(traces) == 1
    counts = np.asarray(metrics["replay_arm_counts"])
    assert counts[:2].sum() == plan.replay_batch * cfg.train.chunk_size and counts[2:].sum() == 0
    probs = np.asarray(metrics["arm_probs"])
    chex.assert_shape(probs, (len(ctx.tasks),))
    assert np.isclose(probs.sum(), 1.0) and np.all(probs[:2] > 0) and np.all(probs[2:] == 0)
    assert np.all(np.isfinite(np.asarray(metrics["loss"])))
    with pytest.raises(ValueError, match="probe_samples"):  # the chunk refuses probes for 'benefit'
        spec = step_lib.ChunkSpec(cfg.train.chunk_size, plan.new_batch, plan.replay_batch, 2)
        step_lib.make_chunk_fn(ctx.model, strategy.tx, policy, ctx.mesh, spec)


def test_the_chunk_runs_no_extra_forward_pass_for_benefit_unlike_marginal():
    """Model forward passes traced into the replay chunk (tracing only, no compile): 'benefit' has the
    gradient's one, like 'loss_increase'; the paid 'marginal' adds its post-update pass."""
    ctx = prepare(_tiny("loss_increase", devices=1))
    cfg, traced = ctx.config, []

    def counting_loss(params, batch, key):
        traced.append(1)
        return ctx.model.loss(params, batch, key)

    model, tx = ctx.model._replace(loss=counting_loss), optax.sgd(0.1)
    passes = {}
    for reward in ("loss_increase", "benefit", "marginal"):
        policy = replay_lib.make_replay("amr", max_arms=3, capacity=int(ctx.memory.shape[0]), reward=reward)
        spec = step_lib.ChunkSpec(cfg.train.chunk_size, 14, 2)
        chunk = step_lib.make_chunk_fn(model, tx, policy, ctx.mesh, spec)
        state = jax.eval_shape(
            lambda: TrainState(
                params=ctx.model.init(jax.random.key(0)),
                opt_state=tx.init(ctx.model.init(jax.random.key(0))),
                replay=policy.init(),
                rng=jax.random.key(1),
                step=jnp.zeros((), jnp.int32),
                task=jnp.zeros((), jnp.int32),
                skipped=jnp.zeros((), jnp.int32),
            )
        )
        new = jax.ShapeDtypeStruct((spec.steps, 14) + tuple(ctx.model.example_shape), ctx.model.example_dtype)
        ids = jax.ShapeDtypeStruct((spec.steps, 14), jnp.int32)
        traced.clear()
        jax.eval_shape(chunk, state, new, ids, ctx.memory)
        passes[reward] = len(traced)
    assert passes["benefit"] == passes["loss_increase"] == 1, passes
    assert passes["marginal"] == 2, passes  # negative control: the count does see an extra pass
