"""replay.embeddings="free": k-means arms from embeddings kept by the training passes (amr.train.free_embeddings).

What each test can catch:
  - the model's loss_and_embed changing the loss, or pooling something else than train_embed / embed;
  - the chunk storing the wrong rows, params (post-update instead of pre-update), keys, or not letting the
    last visit win, on 1 and 4 devices; k-means over the buffer differing from k-means over those references;
  - the aux changing training (losses, params, optimizer, bandit) relative to "paid";
  - host transfers or retraces inside the free chunk; the ledger charging an embedding pass it did not run;
  - config_check letting a bad `replay.embeddings` through; the buffer lost by a checkpoint round trip.
Each claim has a negative control showing the check can fail.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from amr.compute import ledger as budget
from amr.compute.costs import kmeans_cost
from amr.compute.plan import plan_strategy
from amr.io.checkpoint import RunCheckpoints
from amr.models import default_model_config, make_model
from amr.replay import clustering
from amr.replay import policies as replay_lib
from amr.runner import config_check
from amr.runner.experiment import prepare
from amr.train import chunk as step_lib
from amr.train import free_embeddings as free_lib
from amr.train.loop import Run
from amr.train.state import make_optimizer
from amr.train.strategy import make_strategy
from amr.train.streams import next_chunk, task_stream
from configs import tiny
from tests.support import traced_chunk
from tests.support.optim import optim_config
from tests.support.states import train_state

S, B, ROWS = 3, 8, 20  # steps per chunk, new rows per step, rows of the task (some never visited)


def _lm():
    cfg = default_model_config("byte_lm")
    cfg.width, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.seq_len = 32, 1, 2, 64, 16
    return make_model(cfg)


def _mae(mask_ratio=0.75):
    cfg = default_model_config("vit_mae")
    cfg.width, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.mask_ratio = 32, 1, 2, 64, mask_ratio
    cfg.image_size, cfg.patch_size, cfg.channels, cfg.decoder_width, cfg.decoder_depth = 8, 4, 1, 16, 1
    cfg.decoder_heads = 2
    return make_model(cfg)


MODELS = {"byte_lm": _lm, "vit_mae": _mae}


def _rows(model, n, seed=0):
    rng = np.random.default_rng(seed)
    if model.example_dtype == jnp.int32:
        return rng.integers(0, 256, (n,) + model.example_shape).astype(np.int32)
    return rng.random((n,) + model.example_shape).astype(np.float32)


# ---------------------------------------------------------------- the model's pooled representation


@pytest.mark.parametrize("name", ["byte_lm", "vit_mae"])
def test_loss_and_embed_keeps_the_loss_and_pools_like_train_embed(name):
    model = MODELS[name]()
    params = model.init(jax.random.key(0))
    x = jnp.asarray(_rows(model, 6))
    key = jax.random.key(5)
    for fn in (lambda f: f, jax.jit):
        loss, emb = fn(model.loss_and_embed)(params, x, key)
        chex.assert_shape(emb, (6, 32))
        np.testing.assert_array_equal(np.asarray(loss), np.asarray(fn(model.loss)(params, x, key)))  # bit for bit
        chex.assert_trees_all_close(emb, fn(model.train_embed)(params, x, key), atol=1e-5, rtol=1e-5)
    if name == "byte_lm":  # the training forward reads the first L-1 bytes: `embed` of those
        chex.assert_trees_all_close(emb, model.embed(params, x[:, :-1]), atol=1e-5, rtol=1e-5)
        with pytest.raises(AssertionError):  # negative control: `embed` of the whole row also pools its last byte
            chex.assert_trees_all_close(emb, model.embed(params, x), atol=1e-5, rtol=1e-5)


def test_vit_pooling_is_embed_when_every_patch_is_visible():
    """vit_mae's free embedding pools the encoder output like `embed`, over the patches the mask leaves
    visible: with mask_ratio 0 that is `embed` itself (up to reduction order); with 0.75 it is not."""
    x = jnp.asarray(_rows(_mae(), 4))
    for ratio, equal in ((0.0, True), (0.75, False)):
        model = _mae(ratio)
        params = model.init(jax.random.key(0))
        free = model.train_embed(params, x, jax.random.key(1))
        if equal:
            chex.assert_trees_all_close(free, model.embed(params, x), atol=1e-5, rtol=1e-5)
        else:
            with pytest.raises(AssertionError):
                chex.assert_trees_all_close(free, model.embed(params, x), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- the chunk's buffer


def _state(model, tx, policy, buffer):
    params = model.init(jax.random.key(0))
    return train_state(params, tx, policy.init(), embeddings=buffer)


# Task rows are ids FIRST + [0, ROWS). Step 2 revisits step 0's first rows (last visit wins) and holds
# one id twice (later column wins); rows 13, 14, 19 are never visited.
FIRST = 40
POS_SxB = np.array([[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 15, 16, 17], [0, 1, 2, 3, 18, 18, 5, 9]], np.int32)


def _reference(model, tx, state, task_rows):
    """Per step: (pre-update params, row keys), replaying the chunk's plain steps in JAX (no replay rows)."""
    _, _, step_key = step_lib.chunk_keys(state.rng, state.step)
    params, opt = state.params, state.opt_state
    out = []
    for t in range(S):
        keys = step_lib._row_keys(jax.random.fold_in(step_key, t), 0, B)
        rows = jnp.asarray(task_rows[POS_SxB[t]])
        out.append((params, keys))
        grads = jax.grad(lambda p: step_lib.per_example_losses(model, p, rows, keys).mean())(params)
        updates, opt = tx.update(grads, opt, params)
        params = optax.apply_updates(params, updates)
    return out


def _expected_buffer(model, steps, task_rows):
    """f32[ROWS, D] from `model.train_embed` at each row's last visit (later steps and columns overwrite)."""
    emb = np.zeros((ROWS, 32), np.float32)
    for t, (params, keys) in enumerate(steps):
        e = np.asarray(free_lib.per_example_train_embeddings(model, params, jnp.asarray(task_rows[POS_SxB[t]]), keys))
        for j, p in enumerate(POS_SxB[t]):
            emb[p] = e[j]
    return emb


def _run_free_chunk(model, tx, n_dev, task_rows):
    mesh = step_lib.make_mesh(n_dev)
    policy = replay_lib.make_replay("none", max_arms=2, capacity=FIRST + ROWS)
    chunk = step_lib.make_chunk_fn(model, tx, policy, mesh, step_lib.ChunkSpec(S, B, 0))
    state = _state(model, tx, policy, free_lib.empty(ROWS, 32, FIRST))
    start = jax.device_get(state)
    state = step_lib.replicate(mesh, state)
    new = step_lib.shard_new_batches(mesh, task_rows[POS_SxB])
    ids = step_lib.shard_new_batches(mesh, FIRST + POS_SxB)
    out, _ = chunk(state, new, ids, step_lib.replicate(mesh, np.zeros((1,), np.int32)))
    return start, jax.device_get(out.embeddings)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["byte_lm", "vit_mae"])
def test_buffer_holds_each_rows_embedding_at_its_last_visits_pre_update_params(name):
    model = MODELS[name]()
    tx = make_optimizer(optim_config(), steps_per_task=12)
    task_rows = _rows(model, ROWS, seed=1)
    buffers = {}
    for n_dev in (1, 4):
        start, buffers[n_dev] = _run_free_chunk(model, tx, n_dev, task_rows)
    steps = _reference(model, tx, start, task_rows)
    want = _expected_buffer(model, steps, task_rows)
    seen = np.zeros(ROWS, bool)
    seen[POS_SxB.reshape(-1)] = True
    for buf in buffers.values():
        chex.assert_shape(buf.emb, (ROWS, 32))
        np.testing.assert_array_equal(buf.seen, seen)
        assert int(buf.first_id) == FIRST
        chex.assert_trees_all_close(buf.emb, want, atol=1e-5, rtol=1e-5)
    # Negative controls: the first visit's (older params), or the post-update params, are not what is stored.
    first_visit = _expected_buffer(model, steps[:2] + [steps[0]], task_rows)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(buffers[4].emb[:4], first_visit[:4], atol=1e-5, rtol=1e-5)
    shifted = _expected_buffer(model, steps[1:] + steps[-1:], task_rows)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(buffers[4].emb, shifted, atol=1e-5, rtol=1e-5)

    # k-means over the buffer = k-means over the reference embeddings at the rows' last visits (the rows
    # that were visited: the others get the paid pass at the task end).
    key, visited = jax.random.key(9), np.flatnonzero(seen)
    free_labels = clustering.kmeans(key, jnp.asarray(buffers[4].emb[visited]), 4).labels
    np.testing.assert_array_equal(free_labels, clustering.kmeans(key, jnp.asarray(want[visited]), 4).labels)
    wrong = clustering.kmeans(key, jnp.asarray(want[visited][::-1]), 4).labels  # negative control: rows mixed up
    assert not np.array_equal(free_labels, wrong)


def test_record_lets_the_last_occurrence_win_and_drops_skipped_steps():
    buf = free_lib.empty(4, 2, first_id=10)
    ids = jnp.array([10, 12, 10, 99], jnp.int32)  # 99: another task's row, dropped
    emb = jnp.arange(8, dtype=jnp.float32).reshape(4, 2)
    for fn in (free_lib.record, jax.jit(free_lib.record)):
        out = fn(buf, ids, emb, jnp.array(True))
        np.testing.assert_array_equal(out.emb, [[4, 5], [0, 0], [2, 3], [0, 0]])
        np.testing.assert_array_equal(out.seen, [True, False, True, False])
        skipped = fn(buf, ids, emb, jnp.array(False))  # a skipped (non-finite) step stores nothing
        assert not np.any(np.asarray(skipped.seen))


# ---------------------------------------------------------------- free vs paid training


def test_free_trains_exactly_like_paid_and_only_adds_the_buffer():
    """With replay rows on 4 devices: losses, params, optimizer and replay state are bit-identical to "paid"
    (the aux does not change the loss); the free state only adds the buffer."""
    model = _lm()
    tx = make_optimizer(optim_config(), steps_per_task=12)
    policy = replay_lib.make_replay("amr", max_arms=4, capacity=FIRST + ROWS, reference="arm")
    mesh, spec = step_lib.make_mesh(4), step_lib.ChunkSpec(S, B, 4)
    memory = _rows(model, FIRST + ROWS, seed=2)
    base = _state(model, tx, policy, None)
    base = base.replace(
        replay=policy.add_task(base.replay, np.arange(FIRST), np.arange(FIRST) % 2, 0, np.ones(2, np.float32), 2)
    )
    new = step_lib.shard_new_batches(mesh, memory[FIRST + POS_SxB])
    ids = step_lib.shard_new_batches(mesh, FIRST + POS_SxB)
    mem = step_lib.replicate(mesh, memory)

    def run(state):
        chunk = step_lib.make_chunk_fn(model, tx, policy, mesh, spec)
        return jax.device_get(chunk(step_lib.replicate(mesh, state), new, ids, mem))

    paid, paid_metrics = run(base)
    free, free_metrics = run(base.replace(embeddings=free_lib.empty(ROWS, 32, FIRST)))
    assert paid.embeddings is None and free.embeddings is not None
    assert int(free.embeddings.seen.sum()) == len(np.unique(POS_SxB))
    chex.assert_trees_all_equal(paid_metrics, free_metrics)
    chex.assert_trees_all_equal(paid.replace(rng=None), free.replace(rng=None, embeddings=None))
    # Negative control: the bitwise comparison catches a one-ulp change of one parameter.
    leaves, tree = jax.tree.flatten(paid.params)
    leaves[0] = np.nextafter(leaves[0], np.inf)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_equal(paid.params, jax.tree.unflatten(tree, leaves))


# ---------------------------------------------------------------- in the run: transfers, traces, ledger, ckpt


@pytest.fixture(scope="module")
def tiny_free():
    cfg = tiny.get_config()
    cfg.mesh.num_devices = 2
    cfg.strategies, cfg.baseline = ("amr",), ""
    cfg.replay.clusters_per_task, cfg.replay.embeddings = 4, "free"
    ctx = prepare(cfg)
    return ctx, make_strategy(ctx, "amr")


def test_free_chunk_makes_no_host_transfers_and_traces_once(tiny_free):
    ctx, strategy = tiny_free
    plan, cfg = strategy.plan, ctx.config
    chunk, traces = traced_chunk.counted_chunk(ctx, strategy)
    policy = strategy.policy
    state = strategy.init_state(0)
    n = len(ctx.tasks[0].train)
    replay = policy.add_task(state.replay, np.arange(n), clustering.per_task_labels(n), 0, None, num_clusters=1)
    state = step_lib.replicate(ctx.mesh, state.replace(replay=replay, embeddings=strategy.empty_embeddings(1)))
    stream = task_stream(ctx.tasks[1], int(ctx.offsets[1]), plan.new_batch, 0, 1)
    chunks = [
        tuple(step_lib.shard_new_batches(ctx.mesh, x) for x in next_chunk(stream, cfg.train.chunk_size))
        for _ in range(4)
    ]
    state, _ = chunk(state, *chunks[0], ctx.memory)  # compile outside the guard
    with jax.transfer_guard("disallow"):
        for new, ids in chunks[1:3]:
            state, metrics = chunk(state, new, ids, ctx.memory)
        jax.block_until_ready((state, metrics))
    visited = int(np.asarray(state.embeddings.seen).sum())
    assert visited == min(n, 3 * cfg.train.chunk_size * plan.new_batch)  # a shuffled epoch: all distinct
    # The next task starts with a fresh buffer from the host: same shapes, no retrace.
    state = state.replace(embeddings=step_lib.replicate(ctx.mesh, strategy.empty_embeddings(2)))
    with jax.transfer_guard("disallow"):
        state, metrics = chunk(state, *chunks[3], ctx.memory)
        jax.block_until_ready((state, metrics))
    assert len(traces) == 1


def _charges(run, state, t):
    """(selection FLOPs, selection sample passes) the task end of task t charges."""
    ledger = budget.Ledger()
    run.add_arms(state, t, ledger, float("nan"))
    return ledger.flops["selection"], ledger.samples["selection"]


def test_ledger_charges_an_embedding_pass_only_for_rows_never_trained_on(tiny_free, tmp_path):
    ctx, strategy = tiny_free
    run = Run(ctx, strategy, 0, str(tmp_path / "ckpt"))
    cfg, n = ctx.config, len(ctx.tasks[0].train)
    kmeans = kmeans_cost(n, cfg.model.width, 4, cfg.replay.kmeans_iters)
    state = step_lib.replicate(ctx.mesh, strategy.init_state(0))
    params = state.params
    emb = np.asarray(ctx.model.train_embed(params, jnp.asarray(ctx.tasks[0].train)))
    full = free_lib.EmbeddingBuffer(emb=emb, seen=np.ones(n, bool), first_id=np.int32(0))
    flops, samples = _charges(run, step_lib.replicate(ctx.mesh, state.replace(embeddings=full)), 0)
    assert flops == pytest.approx(kmeans) and samples == 0  # every row visited: k-means only
    partial = full.replace(seen=np.arange(n) < n - 40)  # 40 rows never trained on: 2 batches of 32
    flops, samples = _charges(run, step_lib.replicate(ctx.mesh, state.replace(embeddings=partial)), 0)
    assert flops == pytest.approx(kmeans + 2 * ctx.train_embed_pass.flops(params)) and samples == 64
    paid_flops, paid_samples = _charges(run, state.replace(embeddings=None), 0)  # the paid path (negative control)
    assert paid_flops == pytest.approx(kmeans + 8 * ctx.embed_pass.flops(params)) and paid_samples == 256
    # The plan follows: under zero_cost free trims fewer new rows than paid.
    paid_cfg = ctx.config.copy_and_resolve_references()
    paid_cfg.replay.embeddings = "paid"
    paid_plan = plan_strategy(paid_cfg, "amr", strategy.costs, 2, n)
    assert strategy.plan.trimmed_rows < paid_plan.trimmed_rows
    assert strategy.plan.boundary_selection_flops < paid_plan.boundary_selection_flops


def test_buffer_survives_a_checkpoint_round_trip(tiny_free, tmp_path):
    ctx, strategy = tiny_free
    state = strategy.init_state(0)
    buf = strategy.empty_embeddings(1)
    buf = buf.replace(emb=np.random.default_rng(0).random(buf.emb.shape, np.float32), seen=np.arange(256) % 3 == 0)
    state = step_lib.replicate(ctx.mesh, state.replace(embeddings=buf))
    ckpt = RunCheckpoints(str(tmp_path / "ckpt"))
    ckpt.save(7, state, {"note": "x"})
    restored, host = ckpt.restore_latest(step_lib.replicate(ctx.mesh, strategy.init_state(0)))
    ckpt.close()
    chex.assert_trees_all_equal(jax.device_get(restored.embeddings), jax.device_get(state.embeddings))
    assert host["note"] == "x" and int(restored.embeddings.first_id) == int(ctx.offsets[1])


# ---------------------------------------------------------------- config


def test_config_check_names_replay_embeddings():
    cfg = tiny.get_config()
    for good in ("paid", "free"):
        cfg.replay.embeddings = good
        config_check.validate(cfg, 1)  # negative control: valid values pass
    cfg.replay.embeddings = "cheap"
    with pytest.raises(config_check.ConfigError, match=r"^replay\.embeddings: .*'cheap'"):
        config_check.validate(cfg, 1)
