"""replay.share: the replay rows per step chosen per chunk in [share_min, share_max] x batch at a fixed
number of rows per step (flex slots, `amr.train.flex_batch`; rules in `amr.replay.share`)."""

import chex
import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from amr.io.checkpoint import RunCheckpoints
from amr.methods import hooks as method_hooks
from amr.methods.ema import ema
from amr.replay import clustering
from amr.replay import share as share_lib
from amr.runner import config_check
from amr.runner.experiment import prepare
from amr.train import chunk as step_lib
from amr.train import flex_batch, measured
from amr.train import free_embeddings as free_lib
from amr.train.strategy import make_share_rule, make_strategy
from amr.train.streams import next_chunk, task_stream
from configs import tiny

S, N, R_MAX, FLEX, TARGET = 4, 24, 8, 8, 4  # batch 32: 24 always-new rows, 8 replay slots of which 8 flex


def _config(share="schedule", devices=4):
    cfg = tiny.get_config()
    cfg.train.batch_size, cfg.mesh.num_devices = 32, devices
    cfg.replay.share, cfg.replay.share_min, cfg.replay.share_max = share, 0.0, 0.25
    cfg.strategies, cfg.baseline = ("amr",), ""
    return cfg


@pytest.fixture(scope="module")
def ctx():
    return prepare(_config())


def _reference_table(rows_min, rows_max, target, chunks, profile):
    """NumPy reference of the schedule: integer parts of the ramp's running integral, chunk by chunk."""
    slope = 2.0 * min(rows_max - target, target - rows_min)
    ramp = [target + slope * (0.5 - (c + 0.5) / chunks) for c in range(chunks)]
    totals = np.round(np.concatenate([[0.0], np.cumsum(ramp)]))
    table = [int(totals[c + 1] - totals[c]) for c in range(chunks)]
    return table if profile == "front" else table[::-1]


def test_schedule_table_matches_numpy_reference_and_keeps_the_mean():
    for lo, hi, target, chunks in ((0, 8, 4, 4), (0, 8, 2, 20), (2, 6, 4, 7), (4, 4, 4, 5), (0, 16, 1, 9)):
        for profile in ("front", "back"):
            got = share_lib.schedule_table(lo, hi, target, chunks, profile)
            np.testing.assert_array_equal(got, _reference_table(lo, hi, target, chunks, profile))
            assert got.sum() == chunks * target and got.min() >= lo and got.max() <= hi
    front = share_lib.schedule_table(0, 8, 4, 4, "front")
    np.testing.assert_array_equal(front, [7, 5, 3, 1])
    with pytest.raises(AssertionError):  # negative control: the reference tells the profiles apart
        np.testing.assert_array_equal(front, _reference_table(0, 8, 4, 4, "back"))


def test_tail_replays_nothing_then_rows_max_with_the_exact_mean():
    np.testing.assert_array_equal(share_lib.schedule_table(0, 8, 2, 20, "tail"), [0] * 15 + [8] * 5)
    np.testing.assert_array_equal(share_lib.schedule_table(1, 3, 2, 6, "tail"), [1, 1, 1, 3, 3, 3])
    np.testing.assert_array_equal(share_lib.schedule_table(4, 4, 4, 3, "tail"), [4, 4, 4])
    with pytest.raises(AssertionError):  # negative control: 'back' ramps, it does not step
        np.testing.assert_array_equal(share_lib.schedule_table(0, 8, 2, 20, "back"), [0] * 15 + [8] * 5)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    lo=st.integers(0, 4), extra_target=st.integers(0, 6), extra_max=st.integers(0, 8), chunks=st.integers(1, 40)
)
def test_every_profile_keeps_the_mean_and_bounds_and_tail_never_decreases(lo, extra_target, extra_max, chunks):
    target, hi = lo + extra_target, lo + extra_target + extra_max
    for profile in share_lib.PROFILES:
        got = share_lib.schedule_table(lo, hi, target, chunks, profile)
        chex.assert_shape(got, (chunks,))
        assert got.sum() == chunks * target and got.min() >= lo and got.max() <= hi, (profile, got)
    tail = share_lib.schedule_table(lo, hi, target, chunks, "tail")
    assert (np.diff(tail) >= 0).all(), tail


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("share", "adaptive", "replay.share: expected one of"),
        ("share_min", 0.25, "replay.share_min: 0.25 exceeds replay.fraction"),
        ("share_max", 0.0, "replay.share_max: 0.0 is below replay.fraction"),
        ("share_max", 0.2, "replay.share_max: 0.2 x train.batch_size=32 = 6.4 rows"),
        ("share_min", 0.03125, "replay.share_min: 0.03125 x train.batch_size=32 = 1 rows, not a whole number"),
        ("share_max", 1.0, "replay.share_max: 1.0 x 32 replay rows leave no new row"),
        ("share_schedule", "middle", "replay.share_schedule: expected one of"),
    ],
)
def test_config_check_names_the_share_keys(key, value, message):
    cfg = _config()
    config_check.validate(cfg, 4)  # negative control: the unchanged config passes
    cfg.replay[key] = value
    with pytest.raises(config_check.ConfigError, match=message.replace(".", r"\.")):
        config_check.validate(cfg, 4)


def test_config_check_rejects_mir_and_a_same_split_control_that_does_not_fit():
    cfg = _config()
    cfg.strategies = ("amr", "mir")
    with pytest.raises(config_check.ConfigError, match="replay.share: 'schedule' is not implemented for 'mir'"):
        config_check.validate(cfg, 4)
    cfg = _config()
    cfg.replay.new_rows = 24  # the always-new rows of a same-split control under a schedule: 32 - 8 slots fit
    config_check.validate(cfg, 4)
    cfg.replay.new_rows = 28  # negative control: 28 + share_max's 8 slots do not fit the batch of 32
    with pytest.raises(config_check.ConfigError, match="replay.new_rows: 28 always-new rows"):
        config_check.validate(cfg, 4)


def test_fixed_share_is_the_plan_and_state_of_a_config_without_the_keys(ctx):
    """'fixed' builds what a config predating replay.share builds: no flex slots, no share state."""
    cfg = _config("fixed")
    old = _config("fixed")
    for key in ("share", "share_min", "share_max", "share_schedule"):
        del old.replay[key]
    for c in (cfg, old):
        c.mesh.num_devices = 4
    plans = [make_strategy(prepare(c), "amr") for c in (cfg, old)]
    assert plans[0].plan == plans[1].plan and plans[0].plan.flex_rows == 0
    assert plans[0].share is None and plans[0].init_state(0).share is None
    adaptive = make_strategy(prepare(_config("controller")), "amr")  # negative control: the plan changes
    assert adaptive.plan.flex_rows == FLEX and adaptive.plan.replay_batch == R_MAX
    assert adaptive.plan.new_batch + adaptive.plan.replay_batch == plans[0].plan.new_batch + plans[0].plan.replay_batch


# ---------------------------------------------------------------- the chunk


def _state(ctx, strategy, mesh, methods=()):
    """A TrainState with task 0 as arms (its rows' reference losses 0, so every replayed row is observed)."""
    n = len(ctx.tasks[0].train)
    replay = strategy.policy.add_task(
        strategy.policy.init(), np.arange(n), clustering.per_task_labels(n), 0, None, num_clusters=1
    )
    replay = replay.replace(sample_ref=replay.sample_ref.at[:n].set(0.0))
    state = strategy.init_state(0).replace(replay=replay, step=jnp.asarray(ctx.config.train.steps_per_task))
    state = state.replace(methods=method_hooks.init_states(methods, state.params))
    return step_lib.replicate(mesh, state)


def _chunks(ctx, count):
    stream = task_stream(ctx.tasks[1], int(ctx.offsets[1]), N + FLEX, 0, 1)
    return [tuple(flex_batch.split_new(x, N, FLEX) for x in next_chunk(stream, S)) for _ in range(count)]


def _run(ctx, mesh, chunks, policy=None, guard_after=None, methods=(), embeddings=None):
    strategy = make_strategy(ctx, "amr")
    spec = step_lib.ChunkSpec(S, N, R_MAX, 0, FLEX)
    rule = make_share_rule(ctx.config, 4)
    fn = step_lib.make_chunk_fn(
        ctx.model, strategy.tx, policy or strategy.policy, mesh, spec, methods=methods, share=rule
    )
    memory = step_lib.replicate(mesh, np.concatenate([t.train for t in ctx.tasks]))
    state, history = _state(ctx, strategy, mesh, methods), []
    if embeddings is not None:
        state = step_lib.replicate(mesh, jax.device_get(state).replace(embeddings=embeddings))
    for i, (new, ids) in enumerate(chunks):
        new, ids = step_lib.shard_new_batches(mesh, new), step_lib.shard_new_batches(mesh, ids)
        if guard_after is not None and i >= guard_after:
            with jax.transfer_guard("disallow"):
                state, metrics = fn(state, new, ids, memory)
        else:
            state, metrics = fn(state, new, ids, memory)
        history.append((jax.device_get(state), jax.device_get(metrics)))
    return history


def test_chunks_train_r_replay_rows_one_trace_no_transfers(ctx):
    """Per chunk: r follows the schedule; the bandit observes exactly S*r rows and `record_new` sees
    exactly the new rows trained (all always-new rows and the flex new rows past r, none before r);
    one trace across four values of r, no transfers."""
    strategy = make_strategy(ctx, "amr")
    policy = strategy.policy._replace(presample=chex.assert_max_traces(strategy.policy.presample, n=1))
    chunks = _chunks(ctx, 4)
    history = _run(ctx, ctx.mesh, chunks, policy, guard_after=1)
    expected = _reference_table(0, R_MAX, TARGET, 4, "front")
    observed_before, trained = 0, set()
    task1 = int(ctx.offsets[1]) + np.arange(len(ctx.tasks[1].train))
    for (state, metrics), r, (_, (always_ids, flex_ids)) in zip(history, expected, chunks, strict=True):
        assert int(metrics["replay_rows"]) == r
        assert int(metrics["replay_arm_counts"].sum()) == S * r
        observed = int(state.replay.bandit.t)
        assert observed - observed_before == S * r
        trained |= set(always_ids.ravel().tolist()) | set(flex_ids[:, r:].ravel().tolist())  # rows_min = 0
        assert set(task1[np.isfinite(state.replay.sample_ref[task1])].tolist()) == trained
        observed_before = observed
    chex.clear_trace_counter()


def test_flex_chunk_runs_the_methods_hooks_one_trace_no_transfers(ctx):
    """A flex chunk with a method (methods=("ema",)): its after_step runs in the step both train steps
    share, traced once across values of r, no transfers; the EMA moves every chunk and is not the
    trained weights."""
    method = ema(0.5)
    method = method._replace(after_step=chex.assert_max_traces(method.after_step, n=1))
    history = _run(ctx, ctx.mesh, _chunks(ctx, 3), guard_after=1, methods=(method,))
    chex.clear_trace_counter()
    assert len({int(m["replay_rows"]) for _, m in history}) > 1  # r varied under the one trace
    start = make_strategy(ctx, "amr").init_state(0).params
    averages = [start] + [state.methods["ema"]["params"] for state, _ in history]
    assert all(_max_diff(before, after) > 0 for before, after in zip(averages, averages[1:]))  # moved every chunk
    last = history[-1][0]
    assert int(last.skipped) == 0
    assert _max_diff(last.methods["ema"]["params"], last.params) > 0  # negative control: not the trained weights


def test_flex_chunk_records_free_embeddings_of_the_rows_trained_as_new(ctx):
    """With a free-embeddings buffer a flex chunk stores the embedding of every row it trained as new (the
    always-new rows and the flex new rows past r) and of no flex row that a replay slot displaced; training
    is bit-identical to the same chunks without a buffer (the pooling rides on the same forward pass)."""
    chunks = _chunks(ctx, 4)
    first, rows = int(ctx.offsets[1]), len(ctx.tasks[1].train)
    buffer = free_lib.empty(rows, ctx.config.model.width, first)
    plain = _run(ctx, ctx.mesh, chunks)
    free = _run(ctx, ctx.mesh, chunks, embeddings=buffer)
    expected = _reference_table(0, R_MAX, TARGET, 4, "front")
    trained, displaced = set(), set()
    for (state, _), (ref, _), r, (_, (always_ids, flex_ids)) in zip(free, plain, expected, chunks, strict=True):
        chex.assert_trees_all_equal(state.params, ref.params)
        trained |= set(always_ids.ravel().tolist()) | set(flex_ids[:, r:].ravel().tolist())
        displaced |= set(flex_ids[:, :r].ravel().tolist())
        seen = set((first + np.flatnonzero(np.asarray(state.embeddings.seen))).tolist())
        assert seen == trained
    assert displaced - trained  # negative control: some flex rows were displaced by replay and never stored
    emb = np.asarray(free[-1][0].embeddings.emb)
    assert np.all(np.isfinite(emb)) and np.abs(emb[np.asarray(free[-1][0].embeddings.seen)]).sum() > 0


def _max_diff(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def test_the_counts_detect_a_different_r(ctx):
    """Negative control: a schedule of the other profile gives other counts, which the checks above see."""
    cfg = _config()
    cfg.replay.share_schedule = "back"
    other = make_share_rule(cfg, 4)
    front = make_share_rule(ctx.config, 4)
    rows = [int(rule.rows(None, jnp.asarray(16 + 4 * c))) for rule in (front, other) for c in range(4)]
    assert rows[:4] != rows[4:]
    (state, metrics), *_ = _run(ctx, ctx.mesh, _chunks(ctx, 1))
    assert int(state.replay.bandit.t) != S * rows[4]


def test_one_and_four_devices_agree(ctx):
    chunks = _chunks(ctx, 2)
    one = _run(ctx, step_lib.make_mesh(1), chunks)
    four = _run(ctx, ctx.mesh, chunks)
    for (s1, m1), (s4, m4) in zip(one, four, strict=True):
        chex.assert_trees_all_close(s1.params, s4.params, atol=2e-5, rtol=2e-5)
        chex.assert_trees_all_close(s1.replay.bandit.value, s4.replay.bandit.value, atol=1e-4, rtol=1e-4)
        np.testing.assert_array_equal(m1["replay_arm_counts"], m4["replay_arm_counts"])
        np.testing.assert_array_equal(np.isfinite(s1.replay.sample_ref), np.isfinite(s4.replay.sample_ref))
    with pytest.raises(AssertionError):  # negative control: the comparison sees one chunk of training
        chex.assert_trees_all_close(one[0][0].params, one[1][0].params, atol=2e-5, rtol=2e-5)


@pytest.mark.slow
def test_measured_step_flops_equal_the_fixed_share(ctx):
    """The ledger's training FLOPs per step are the fixed split's (same rows); the rest (draws and
    bandit updates for the extra slots) is a sliver of selection."""
    strategy = make_strategy(ctx, "amr")
    state = jax.eval_shape(lambda: strategy.init_state(0))
    rule = make_share_rule(ctx.config, 4)
    flex = measured.chunk_cost(
        ctx, strategy.tx, strategy.policy, step_lib.ChunkSpec(S, N, R_MAX, 0, FLEX), state, strategy.costs, False,
        share=rule, nominal_replay=TARGET,
    )  # fmt: skip
    fixed_state = state.replace(share=None)
    fixed = measured.chunk_cost(
        ctx, strategy.tx, strategy.policy, step_lib.ChunkSpec(S, 32 - TARGET, TARGET), fixed_state, strategy.costs,
        False,
    )  # fmt: skip
    assert flex.train_step == fixed.train_step
    assert flex.categories()["train_replay"] == fixed.categories()["train_replay"]
    assert abs(flex.total - fixed.total) / fixed.total < 0.01, (flex.total, fixed.total)
    smaller = measured.chunk_cost(  # negative control: fewer rows per step measure less
        ctx, strategy.tx, strategy.policy, step_lib.ChunkSpec(S, 28 - TARGET, TARGET), fixed_state, strategy.costs,
        False,
    )  # fmt: skip
    assert smaller.train_step < fixed.train_step


def test_controller_state_survives_a_checkpoint_round_trip(tmp_path, ctx):
    rule = share_lib.make_share("controller", rows_min=0, rows_max=8, rows_target=4, steps_per_task=16, chunk_size=4)
    state = rule.init()
    for loss in (2.0, 1.5):
        state = rule.update(state, share_lib.ShareSignals(jnp.float32(loss / 4), jnp.float32(loss)), jnp.int32(20))
    assert int(state.replay_rows) != 4  # it moved
    strategy = make_strategy(prepare(_config("controller")), "amr")
    train = strategy.init_state(0).replace(share=state)
    ckpt = RunCheckpoints(str(tmp_path))
    ckpt.save(1, train, {"task": 1})
    restored, _ = ckpt.restore_latest(strategy.init_state(0))
    ckpt.close()
    chex.assert_trees_all_close(restored.share, state)
    with pytest.raises(AssertionError):  # negative control: the template's fresh state is different
        chex.assert_trees_all_close(strategy.init_state(0).share, state)


def test_controller_rule_matches_numpy():
    """One update of the controller against its formula in NumPy; r raised when forgetting outgrows progress."""
    rule = share_lib.make_share("controller", rows_min=0, rows_max=8, rows_target=2, steps_per_task=16, chunk_size=4)
    state = rule.init().replace(forgetting=jnp.float32(0.1), new_loss=jnp.float32(2.0), replay_rows=jnp.int32(3))
    out = jax.jit(rule.update)(state, share_lib.ShareSignals(jnp.float32(0.4), jnp.float32(1.9)), jnp.int32(24))
    phi, pi = 0.4 - 0.1, 2.0 - 1.9
    drive = share_lib.DRIVE_EMA * (phi - pi) / (abs(phi) + abs(pi) + 1e-6)
    debt = 3 - 2
    want = int(np.clip(np.round(2 + 6 * drive - debt / 4), 0, 8))
    assert int(out.replay_rows) == want == 3
    np.testing.assert_allclose(float(out.drive), drive, rtol=1e-5)
    calm = jax.jit(rule.update)(state, share_lib.ShareSignals(jnp.float32(0.1), jnp.float32(1.0)), jnp.int32(24))
    assert int(calm.replay_rows) < int(out.replay_rows)  # negative control: progress without forgetting lowers r
