"""The scanned, sharded chunk: device-count invariance, one trace, non-finite steps skipped."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amr.models import default_model_config, make_model
from amr.replay import policies as replay_lib
from amr.train import chunk as step_lib
from amr.train.state import TrainState, make_optimizer
from tests.support.optim import optim_config

S, CAP = 3, 160


def _optim():
    return optim_config()


def _lm():
    cfg = default_model_config("byte_lm")
    cfg.width, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.seq_len = 32, 1, 2, 64, 16
    return make_model(cfg)


def _mae():
    cfg = default_model_config("vit_mae")
    cfg.width, cfg.depth, cfg.heads, cfg.mlp_dim = 32, 1, 2, 64
    cfg.image_size, cfg.patch_size, cfg.channels, cfg.decoder_width, cfg.decoder_depth = 8, 4, 1, 16, 1
    cfg.decoder_heads = 2
    return make_model(cfg)


def _setup(model, policy_name="amr", tasks=2, record_references=True, **policy_kw):
    rng = np.random.default_rng(0)
    if model.example_dtype == jnp.int32:
        memory = rng.integers(0, 256, (CAP,) + model.example_shape).astype(np.int32)
    else:
        memory = rng.random((CAP,) + model.example_shape).astype(np.float32)
    policy_kw.setdefault("reference", "arm")  # the arm references below (the library default is "sample")
    policy = replay_lib.make_replay(policy_name, max_arms=8, capacity=CAP, **policy_kw)
    tx = make_optimizer(_optim(), steps_per_task=12)
    params = model.init(jax.random.key(0))
    replay = policy.init()
    for t in range(tasks):
        replay = policy.add_task(
            replay, t * 24 + np.arange(24), np.arange(24) % 2, t, np.ones(2, np.float32), num_clusters=2
        )
    if record_references:  # as the trainer does: each past row's loss when it was trained on as new data
        ids = np.arange(tasks * 24, dtype=np.int32)
        keys = jax.random.split(jax.random.key(7), ids.shape[0])
        losses = step_lib.per_example_losses(model, params, jnp.asarray(memory[ids]), keys)
        replay = policy.record_new(replay, jnp.asarray(ids)[None], losses[None])
    state = TrainState(
        params=params,
        opt_state=tx.init(params),
        replay=replay,
        rng=jax.random.key(3),
        step=jnp.zeros((), jnp.int32),
        task=jnp.ones((), jnp.int32),
        skipped=jnp.zeros((), jnp.int32),
    )
    return policy, tx, state, memory


def _ids(mesh, new_SxB, first):
    """Memory ids of new rows taken contiguously from `first`."""
    S_, B_ = new_SxB.shape[:2]
    return step_lib.shard_new_batches(mesh, (first + np.arange(S_ * B_, dtype=np.int32)).reshape(S_, B_))


def _run(model, policy, tx, state, memory, mesh, new, spec):
    chunk = step_lib.make_chunk_fn(model, tx, policy, mesh, spec)
    state = step_lib.replicate(mesh, state)
    mem = step_lib.replicate(mesh, memory)
    out = []
    for c in range(new.shape[0]):
        state, metrics = chunk(
            state, step_lib.shard_new_batches(mesh, new[c]), _ids(mesh, new[c], 48 + c * S * 16), mem
        )
        out.append(metrics)
    return state, out


@pytest.mark.parametrize(
    "policy_name,extra",
    [
        ("amr", {}),
        pytest.param("amr", {"reference": "sample"}, marks=pytest.mark.slow),
        ("mir", {"candidates": 2}),
        pytest.param("amr", {"reward": "marginal"}, marks=pytest.mark.slow),
    ],
)
def test_one_device_equals_eight(policy_name, extra):
    model = _lm()
    policy, tx, state, memory = _setup(model, policy_name, **extra)
    new = np.asarray(memory[48 : 48 + 2 * S * 16]).reshape((2, S, 16) + model.example_shape)
    spec = step_lib.ChunkSpec(S, 16, 8, probe_samples=8 if policy_name == "amr" and "reward" not in extra else 0)
    s1, m1 = _run(model, policy, tx, state, memory, step_lib.make_mesh(1), new, spec)
    s8, m8 = _run(model, policy, tx, state, memory, step_lib.make_mesh(8), new, spec)
    # Adam divides by sqrt(v): parameters whose gradient is ~0 (the key bias) turn reduction-order
    # rounding into updates of up to lr per step, hence atol 1e-4 on params; losses agree to 2e-5.
    chex.assert_trees_all_close(jax.device_get(s1.params), jax.device_get(s8.params), atol=1e-4, rtol=1e-4)
    chex.assert_trees_all_close(
        jax.device_get(s1.replay.bandit), jax.device_get(s8.replay.bandit), atol=2e-5, rtol=2e-5
    )
    chex.assert_trees_all_close(jax.device_get(m1), jax.device_get(m8), atol=2e-5, rtol=2e-5)
    if policy.uses_bandit:  # the bandit really learned: finite rewards reached it on both meshes
        for s in (s1, s8):
            assert int(s.replay.bandit.t) > 0 and np.all(np.isfinite(np.asarray(s.replay.bandit.value)))


def test_sample_reference_without_recorded_losses_gives_the_bandit_nothing():
    """Negative control of the check above: with no recorded per-sample reference every replay
    reward is NaN, so nothing reaches the bandit (t stays 0), as in the old version of that test."""
    model = _lm()
    policy, tx, state, memory = _setup(model, "amr", record_references=False, reference="sample")
    new = np.asarray(memory[48 : 48 + S * 16]).reshape((1, S, 16) + model.example_shape)
    s1, _ = _run(model, policy, tx, state, memory, step_lib.make_mesh(1), new, step_lib.ChunkSpec(S, 16, 8))
    assert int(s1.replay.bandit.t) == 0


def test_one_trace_across_chunks_and_tasks():
    model = _lm()
    policy, tx, state, memory = _setup(model, tasks=1)
    policy = policy._replace(presample=chex.assert_max_traces(policy.presample, n=1))
    mesh = step_lib.make_mesh(2)
    chunk = step_lib.make_chunk_fn(model, tx, policy, mesh, step_lib.ChunkSpec(S, 4, 2))
    state, mem = step_lib.replicate(mesh, state), step_lib.replicate(mesh, memory)
    new = np.asarray(memory[: S * 4]).reshape((S, 4) + model.example_shape)
    for t in range(1, 4):  # tasks 1..3 become arms between chunks: shapes stay, nothing recompiles
        for _ in range(2):
            state, metrics = chunk(state, step_lib.shard_new_batches(mesh, new), _ids(mesh, new, 0), mem)
        replay = policy.add_task(
            state.replay, t * 24 + np.arange(24), np.arange(24) % 2, t, np.ones(2, np.float32), num_clusters=2
        )
        state = state.replace(replay=step_lib.replicate(mesh, replay))
    chex.assert_shape(metrics["loss"], (S,))


@pytest.mark.slow  # a fresh clone compiles its programs for half a minute: the slow tier
def test_nonfinite_steps_are_skipped():
    model = _mae()
    policy, tx, state, memory = _setup(model, "uniform")
    new = np.asarray(memory[: S * 4]).reshape((S, 4) + model.example_shape).copy()
    new[1, 0, 0, 0, 0] = np.nan  # step 1 of the chunk sees a NaN pixel
    mesh = step_lib.make_mesh(1)
    chunk = step_lib.make_chunk_fn(model, tx, policy, mesh, step_lib.ChunkSpec(S, 4, 2))
    s0 = step_lib.replicate(mesh, state)
    state1, metrics = chunk(
        s0, step_lib.shard_new_batches(mesh, new), _ids(mesh, new, 0), step_lib.replicate(mesh, memory)
    )
    loss = np.asarray(metrics["loss"])
    assert np.isfinite(loss[0]) and not np.isfinite(loss[1]) and np.isfinite(loss[2])
    assert int(state1.skipped) == 1
    assert np.all(np.isfinite(np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(state1.params))])))
    # a chunk whose only step is non-finite leaves params, optimizer and bandit exactly as they were
    one = step_lib.make_chunk_fn(model, tx, policy, mesh, step_lib.ChunkSpec(1, 4, 2))
    before = jax.device_get(state1)
    state2, _ = one(
        step_lib.replicate(mesh, before),
        step_lib.shard_new_batches(mesh, new[1:2]),
        _ids(mesh, new[1:2], 4),
        step_lib.replicate(mesh, memory),
    )
    after = jax.device_get(state2)
    chex.assert_trees_all_equal(after.params, before.params)
    chex.assert_trees_all_equal(after.opt_state, before.opt_state)
    chex.assert_trees_all_equal(after.replay.bandit, before.replay.bandit)
    assert int(after.skipped) == 2


def test_bad_device_split():
    model = _lm()
    policy, tx, _, _ = _setup(model)
    with pytest.raises(ValueError, match="replay_batch"):
        step_lib.make_chunk_fn(model, tx, policy, step_lib.make_mesh(8), step_lib.ChunkSpec(S, 16, 4))
    with pytest.raises(ValueError, match="num_devices"):
        step_lib.make_mesh(10_000)
