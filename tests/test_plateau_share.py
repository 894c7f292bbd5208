"""The 'plateau' replay share: a tail schedule whose stretch starts once the new task stops learning."""

import chex
import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from amr.io.checkpoint import RunCheckpoints
from amr.replay import share as share_lib
from amr.runner import config_check
from amr.runner.experiment import prepare
from amr.train.strategy import make_share_rule, make_strategy
from configs import tiny

CHUNK, CHUNKS = 4, 10
STEPS = CHUNK * CHUNKS


def _sums(xs, ys, decay):
    """The rule's decayed sums in NumPy: point i of n has weight decay^(n-1-i)."""
    w = decay ** np.arange(len(xs) - 1, -1, -1, dtype=np.float64)
    x, y = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    return np.array([w.sum(), (w * w).sum(), (w * x).sum(), (w * y).sum(), (w * x * x).sum(), (w * x * y).sum(),
                     (w * y * y).sum()])  # fmt: skip


@pytest.mark.parametrize("decay", [1.0, 0.8])
def test_weighted_slope_matches_numpy_least_squares(decay):
    rng = np.random.default_rng(0)
    xs = np.arange(8.0)
    ys = 2.0 - 0.05 * xs + 0.01 * rng.standard_normal(8)
    w = decay ** np.arange(7, -1, -1)
    slope_ref = np.polyfit(xs, ys, 1, w=np.sqrt(w))[0]  # polyfit weights multiply residuals: sqrt of ours
    slope, se = jax.jit(share_lib.weighted_slope)(jnp.asarray(_sums(xs, ys, decay), jnp.float32))
    np.testing.assert_allclose(float(slope), slope_ref, rtol=1e-3)
    if decay == 1.0:  # equal weights: the textbook standard error sqrt(RSS / (n - 2) / Sxx)
        fit = np.polyval(np.polyfit(xs, ys, 1), xs)
        se_ref = np.sqrt(((ys - fit) ** 2).sum() / 6 / ((xs - xs.mean()) ** 2).sum())
        np.testing.assert_allclose(float(se), se_ref, rtol=2e-2)
    # negative control: a flat line has no slope to speak of
    flat, _ = share_lib.weighted_slope(jnp.asarray(_sums(xs, np.full(8, 2.0), decay), jnp.float32))
    assert abs(float(flat)) < 1e-4 < abs(slope_ref)


def test_weighted_slope_is_nan_below_three_points():
    slope, se = share_lib.weighted_slope(jnp.asarray(_sums([0.0, 1.0], [2.0, 1.0], 1.0), jnp.float32))
    assert np.isnan(float(slope)) and np.isnan(float(se))


def _walk(rule, losses, first_step=STEPS):
    """r of each chunk of a task (starting at `first_step`) fed `losses` in turn, and the final state."""
    state, rows = rule.init(), []
    update = jax.jit(chex.assert_max_traces(rule.update, n=1))
    for c, loss in enumerate(losses):
        step = first_step + CHUNK * c
        rows.append(int(rule.rows(state, jnp.int32(step))))
        state = update(state, share_lib.ShareSignals(jnp.float32(0.0), jnp.float32(loss)), jnp.int32(step + CHUNK))
    chex.clear_trace_counter()
    return rows, state


def _rule(rows_min=0, rows_max=8, target=2, z=1.0, decay=0.8):
    return share_lib.make_share(
        "plateau", rows_min=rows_min, rows_max=rows_max, rows_target=target, steps_per_task=STEPS, chunk_size=CHUNK,
        plateau_z=z, plateau_decay=decay,
    )  # fmt: skip


def test_a_task_that_keeps_learning_gets_exactly_the_tail():
    falling = 3.0 - 0.1 * np.arange(CHUNKS)
    rows, state = _walk(_rule(), falling)
    tail = share_lib.schedule_table(0, 8, 2, CHUNKS, "tail").tolist()
    assert rows == tail and sum(rows) == 2 * CHUNKS
    assert not bool(state.on)


def test_a_flat_task_replays_rows_max_from_the_third_chunk_to_its_end():
    noisy_flat = 2.0 + 0.01 * np.random.default_rng(1).standard_normal(CHUNKS)
    rows, _ = _walk(_rule(), noisy_flat)
    k = share_lib.PLATEAU_MIN_CHUNKS
    assert rows[:k] == share_lib.schedule_table(0, 8, 2, CHUNKS, "tail").tolist()[:k]
    assert rows[k:] == [8] * (CHUNKS - k)


def test_the_plateau_latches_and_a_new_task_starts_over():
    curve = [2.0, 2.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.0, -0.1, -0.2]  # flat, then falling fast: stays on
    rows, state = _walk(_rule(), curve)
    assert rows[3:] == [8] * 7  # on from the third flat chunk through the fast fall
    # the last update crossed into the next task: the state is fresh
    fresh = _rule().init()
    chex.assert_trees_all_close(state.replace(on=fresh.on), fresh.replace(on=fresh.on))


def test_task_end_resets_the_state():
    rule = _rule()
    state = rule.init()
    for c in range(CHUNKS):
        state = rule.update(
            state, share_lib.ShareSignals(jnp.float32(0.0), jnp.float32(2.0)), jnp.int32(CHUNK * (c + 1))
        )
        if c < CHUNKS - 1:
            assert int(state.seen) == c + 1
    chex.assert_trees_all_close(state, rule.init())
    with pytest.raises(AssertionError):  # negative control: mid-task the state is not fresh
        chex.assert_trees_all_close(
            rule.update(rule.init(), share_lib.ShareSignals(0.0, 2.0), jnp.int32(4)), rule.init()
        )


def test_z_zero_needs_a_rising_loss_and_nan_losses_are_skipped():
    falling_slowly = 2.0 - 0.001 * np.arange(CHUNKS)
    rows, _ = _walk(_rule(z=0.0), falling_slowly)
    assert max(rows) == 8 and rows[: CHUNKS - 3] == [0] * (CHUNKS - 3)  # only the tail's own stretch
    rows, state = _walk(_rule(), [np.nan] * CHUNKS)
    assert not bool(state.on) and sum(rows) == 2 * CHUNKS  # nothing seen: the tail, no plateau


@hypothesis.settings(deadline=None, max_examples=25)
@hypothesis.given(
    losses=st.lists(st.floats(0.0, 5.0, allow_nan=False), min_size=CHUNKS, max_size=CHUNKS),
    target=st.integers(0, 8),
)
def test_rows_are_in_bounds_never_fall_and_average_at_least_the_target(losses, target):
    rule = _rule(rows_min=0, rows_max=8, target=target)
    state, rows = rule.init(), []
    for c, loss in enumerate(losses):  # eager: the rule is plain jnp
        rows.append(int(rule.rows(state, jnp.int32(CHUNK * c))))
        state = rule.update(
            state, share_lib.ShareSignals(jnp.float32(0.0), jnp.float32(loss)), jnp.int32(CHUNK * (c + 1))
        )
    assert all(0 <= r <= 8 for r in rows)
    assert rows == sorted(rows)
    assert sum(rows) >= target * CHUNKS


def _config(**replay):
    cfg = tiny.get_config()
    cfg.train.batch_size, cfg.mesh.num_devices = 32, 4
    cfg.replay.share, cfg.replay.share_min, cfg.replay.share_max = "plateau", 0.0, 0.25
    for k, v in replay.items():
        cfg.replay[k] = v
    cfg.strategies, cfg.baseline = ("amr",), ""
    return cfg


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("plateau_decay", 0.0, "replay.plateau_decay: must lie in (0, 1], got 0.0"),
        ("plateau_decay", 1.5, "replay.plateau_decay: must lie in (0, 1], got 1.5"),
        ("plateau_z", -1.0, "replay.plateau_z: must be a finite number >= 0, got -1.0"),
        ("plateau_z", float("inf"), "replay.plateau_z: must be a finite number >= 0, got inf"),
    ],
)
def test_config_check_names_the_plateau_keys(key, value, message):
    config_check.validate(_config(), 4)  # negative control: the unchanged config passes
    with pytest.raises(
        config_check.ConfigError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")
    ):
        config_check.validate(_config(**{key: value}), 4)


def test_the_config_builds_the_rule_and_its_state_survives_a_checkpoint(tmp_path):
    ctx = prepare(_config(plateau_z=2.0))
    rule = make_share_rule(ctx.config, 4)
    assert rule.name == "plateau" and (rule.rows_min, rule.rows_max) == (0, 8)
    state = rule.init()
    for c, loss in enumerate((2.0, 2.0, 2.0)):  # tiny: 16 steps of 4 per task, so step 16 would start over
        state = rule.update(state, share_lib.ShareSignals(jnp.float32(0.0), jnp.float32(loss)), jnp.int32(4 * (c + 1)))
    assert bool(state.on)
    strategy = make_strategy(ctx, "amr")
    assert strategy.plan.flex_rows == 8
    ckpt = RunCheckpoints(str(tmp_path))
    ckpt.save(1, strategy.init_state(0).replace(share=state), {"task": 1})
    restored, _ = ckpt.restore_latest(strategy.init_state(0))
    ckpt.close()
    chex.assert_trees_all_close(restored.share, state)
    with pytest.raises(AssertionError):  # negative control: the template's fresh state is different
        chex.assert_trees_all_close(strategy.init_state(0).share, state)
