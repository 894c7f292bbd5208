"""LiNeS, HFT and the slow learner (amr.methods acting on parameters and updates): their math against
NumPy, the layer map, the chunk's discipline with them, checkpoints, config checks and their cost.

The chunk helpers (`_chunk_setup`, `_new`, `_train`) are tests/test_methods.py's."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from amr.compute.costs import CostModel
from amr.io.checkpoint import RunCheckpoints
from amr.methods import check_config, hooks, layers, make_methods
from amr.methods import costs as method_costs
from amr.methods.hft import hft, update_mask
from amr.methods.lines import lines
from amr.methods.slow_learner import slow_learner
from amr.models import default_model_config, make_model
from amr.replay import policies as replay_lib
from amr.train import chunk as step_lib
from amr.train.method_pass import TaskEndPass
from amr.train.state import TrainState, make_optimizer
from configs import tiny
from tests.support.optim import optim_config
from tests.test_methods import _chunk_setup, _new, _train, _tree

# the byte LM below by hand: embeddings 1, block i at i + 2, final LayerNorm and head at L = 4
BYTE_LM_LAYERS = {"tok_embed": 1, "pos_embed": 1, "block0": 2, "block1": 3, "ln_final": 4, "head": 4}


@pytest.fixture(scope="module")
def model():
    cfg = default_model_config("byte_lm")
    cfg.width, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.seq_len = 16, 2, 2, 32, 8
    return make_model(cfg)


def _by_hand(path) -> int:
    p = layers.names(path)
    return BYTE_LM_LAYERS[p[1] if p[0] == "transformer" else p[0]]


def _methods(model, names, **kw):
    cfg = tiny.get_config()
    cfg.methods = names
    cfg.method.update(kw)
    return make_methods(cfg, model)


# ---------------------------------------------------------------- LiNeS


@pytest.mark.parametrize("jit", [False, True])
def test_lines_scales_each_layers_update_like_numpy(model, jit):
    params = model.init(jax.random.key(0))
    theta, prev = _tree(1, params), _tree(2, params)
    m = lines(0.2, 0.6)
    end = jax.jit(m.task_end) if jit else m.task_end
    state, scaled = end({"anchor": prev}, theta, None, None)

    def numpy_lines(layer_of):
        lam = lambda ell: 0.2 + 0.6 * (ell - 1) / (4 - 1)  # noqa: E731
        return jax.tree_util.tree_map_with_path(lambda p, t, a: a + lam(layer_of(p)) * (t - a), theta, prev)

    chex.assert_trees_all_close(scaled, numpy_lines(_by_hand), rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_equal(state["anchor"], scaled)  # the next task's updates are measured from here
    # negative control: blocks counted from 1 (block i at layer i + 1) is a different edit
    wrong = lambda p: _by_hand(p) - ("block" in "".join(layers.names(p)))  # noqa: E731
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(scaled, numpy_lines(wrong), rtol=1e-6, atol=1e-6)


def test_layer_map_of_the_mae_and_unknown_names():
    mae = make_model(default_model_config("vit_mae"))
    params = jax.eval_shape(mae.init, jax.random.key(0))
    depth = layers.trunk_depth(params)
    assert depth == default_model_config("vit_mae").depth
    found = {layers.names(p): ell for p, ell in jax.tree_util.tree_flatten_with_path(layers.layer_indices(params))[0]}
    L = depth + 2
    assert found[("patch_embed", "kernel")] == found[("cls_token",)] == 1
    assert found[("encoder", "block0", "mlp", "fc1", "kernel")] == 2
    assert found[("encoder", f"block{depth - 1}", "attn", "qkv", "kernel")] == depth + 1
    assert found[("encoder", "ln_final", "scale")] == L and found[("decoder", "block0", "ln1", "scale")] == L
    heads = {
        layers.names(p)[0]
        for p, v in jax.tree_util.tree_flatten_with_path(layers.head_labels(params))[0]
        if v == "head"
    }
    assert heads == {"decoder_embed", "mask_token", "decoder", "decoder_pred"}
    with pytest.raises(ValueError, match="no known layer"):  # a new model must place its parameters
        layers.layer_indices({"adapter": {"kernel": jnp.zeros(2)}})


# ---------------------------------------------------------------- HFT


def _numpy_mask(seed, task, block, n):
    """NumPy reference of HFT's choice: murmur3 finaliser scores, the lowest half of the group frozen."""

    def mix(h):
        h = np.uint64(h) & np.uint64(0xFFFFFFFF)
        h ^= h >> np.uint64(16)
        h = (h * np.uint64(0x85EBCA6B)) & np.uint64(0xFFFFFFFF)
        h ^= h >> np.uint64(13)
        h = (h * np.uint64(0xC2B2AE35)) & np.uint64(0xFFFFFFFF)
        return h ^ (h >> np.uint64(16))

    group = 0 if n == 4 else 1
    scores = [int(mix(mix(mix(8 * block + 4 * group + j) ^ np.uint64(task)) ^ np.uint64(seed))) for j in range(n)]
    keep = np.ones(n, np.float32)
    keep[np.argsort(scores, kind="stable")[: n // 2]] = 0.0
    return keep


def _mask_vectors(mask):
    """{(block, 'attn' | 'mlp'): the units' 0/1 vector} read off a mask tree."""
    t = mask["transformer"]
    out = {}
    for b in range(2):
        blk = t[f"block{b}"]
        q, k, v = np.asarray(blk["attn"]["qkv"]["kernel"]).ravel()
        out[(b, "attn")] = np.array([q, k, v, float(blk["attn"]["out"]["kernel"])])
        out[(b, "mlp")] = np.array([float(blk["mlp"]["fc1"]["kernel"]), float(blk["mlp"]["fc2"]["kernel"])])
        for unit in ("out", "fc1", "fc2"):  # a matrix's bias goes with it
            group = "attn" if unit == "out" else "mlp"
            chex.assert_trees_all_equal(blk[group][unit]["bias"], blk[group][unit]["kernel"])
    return out


@pytest.mark.parametrize("jit", [False, True])
def test_hft_mask_is_numpy_reproducible_half_per_group_and_changes_with_the_task(model, jit):
    params = model.init(jax.random.key(0))
    make = jax.jit(update_mask, static_argnums=1) if jit else update_mask
    for seed, task in [(0, 0), (0, 1), (7, 3)]:
        got = _mask_vectors(make(params, seed, jnp.int32(task)))
        for (b, _), vec in got.items():
            np.testing.assert_array_equal(vec, _numpy_mask(seed, task, b, len(vec)))
            assert vec.sum() == len(vec) // 2  # exactly half of each group trains
    masks = [_mask_vectors(update_mask(params, 0, jnp.int32(t))) for t in range(4)]
    assert any(not np.array_equal(masks[0][k], masks[1][k]) for k in masks[0])  # a new task, a new mask
    # negative control: the reference at the wrong task differs somewhere
    assert any(not np.array_equal(masks[1][k], _numpy_mask(0, 0, k[0], len(masks[1][k]))) for k in masks[1])
    # LayerNorms, embeddings and the head always train
    mask = update_mask(params, 0, jnp.int32(0))
    for name in ("tok_embed", "pos_embed", "head"):
        assert all(float(x) == 1.0 for x in jax.tree.leaves(mask[name]))
    assert float(mask["transformer"]["block0"]["ln1"]["scale"]) == 1.0


def _frozen(mask_leaf, before, after):
    """(frozen parts unchanged, trainable parts changed) of one leaf under its broadcast 0/1 mask."""
    m = np.broadcast_to(np.asarray(mask_leaf), before.shape).astype(bool)
    return np.array_equal(before[~m], after[~m]), bool(np.any(before[m] != after[m])) if m.any() else True


def test_hft_in_the_chunk_freezes_exactly_the_masked_half(model):
    """After a plain chunk (Adam's moments non-zero everywhere), a chunk with HFT leaves every frozen matrix
    bit-identical and moves every trainable one; a plain chunk from the same state moves them all."""
    mesh = step_lib.make_mesh(1)
    chunk_p, state_p, mem, memory = _chunk_setup(model, (), mesh)
    warm = _train(chunk_p, state_p, mem, memory, mesh, 1)
    assert all(float(np.max(np.abs(mu))) > 0 for mu in jax.tree.leaves(warm.opt_state[1][0].mu))
    methods = _methods(model, ("hft",), hft_seed=3)
    chunk_h, _, _, _ = _chunk_setup(model, methods, mesh)
    start = warm.replace(methods=hooks.init_states(methods, warm.params))
    after = _train(chunk_h, step_lib.replicate(mesh, start), mem, memory, mesh, 1)
    free = _train(chunk_p, step_lib.replicate(mesh, warm), mem, memory, mesh, 1)
    mask = jax.tree.leaves(start.methods["hft"]["mask"])
    before, moved, moved_free = (jax.tree.leaves(jax.device_get(t)) for t in (warm.params, after.params, free.params))
    frozen_leaves = 0
    for m, b, a, f in zip(mask, before, moved, moved_free):
        b, a, f = np.asarray(b), np.asarray(a), np.asarray(f)
        still, changed = _frozen(m, b, a)
        assert still and changed
        if not np.all(np.asarray(m) == 1):
            frozen_leaves += 1
            # negative control: without HFT the same part moves (Adam's moments alone would move it)
            assert not _frozen(m, b, f)[0]
    assert frozen_leaves >= 8  # 2 blocks x (q/k/v slices or out, and fc1 or fc2, kernels and biases)


# ---------------------------------------------------------------- slow learner


@pytest.mark.parametrize("jit", [False, True])
def test_slow_learner_backbone_steps_ratio_times_the_head(model, jit):
    params = model.init(jax.random.key(0))
    grads = _tree(4, params)

    def step(ratio):
        tx = hooks.with_transforms((slow_learner(ratio),), optax.sgd(3e-3))
        update = jax.jit(tx.update) if jit else tx.update
        return update(grads, tx.init(params), params)[0]

    def numpy_sgd(ratio):
        return jax.tree_util.tree_map_with_path(
            lambda p, g: -3e-3 * g * (1.0 if layers.names(p)[0] == "head" else ratio), grads
        )

    chex.assert_trees_all_close(step(0.01), numpy_sgd(0.01), rtol=1e-6, atol=1e-9)
    # negative control: ratio 1 is plain SGD, which the slow learner's check rejects
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(step(1.0), numpy_sgd(0.01), rtol=1e-6, atol=1e-9)
    chex.assert_trees_all_equal(step(1.0), jax.tree.map(lambda g: -3e-3 * g, grads))


# ---------------------------------------------------------------- in the chunk: off, one trace, no transfers


def test_neutral_settings_leave_training_unchanged(model):
    """LiNeS (before its first task end) and the slow learner at ratio 1 change no bit of training; HFT with
    an all-ones mask changes it by float rounding only (its select changes XLA's fusion of the update, and Adam
    amplifies last-bit differences of near-zero gradients: < 1e-4 here, against ~1e-3 steps);
    the configured slow learner and HFT's real mask change it."""
    mesh = step_lib.make_mesh(1)
    chunk_p, state_p, mem, memory = _chunk_setup(model, (), mesh)
    plain = _train(chunk_p, state_p, mem, memory, mesh, 2)
    chunk, state, _, _ = _chunk_setup(model, _methods(model, ("lines", "slow_learner"), slow_lr_ratio=1.0), mesh)
    chex.assert_trees_all_equal(_train(chunk, state, mem, memory, mesh, 2).params, plain.params)
    chunk, state, _, _ = _chunk_setup(model, _methods(model, ("hft",)), mesh)
    state = jax.device_get(state)
    ones = jax.tree.map(jnp.ones_like, state.methods["hft"]["mask"])
    state = state.replace(methods={"hft": {**state.methods["hft"], "mask": ones}})
    all_train = _train(chunk, step_lib.replicate(mesh, state), mem, memory, mesh, 2)
    chex.assert_trees_all_close(all_train.params, plain.params, rtol=0, atol=1e-4)
    for names in (("slow_learner",), ("hft",)):  # negative controls
        chunk_m, state_m, _, _ = _chunk_setup(model, _methods(model, names), mesh)
        with pytest.raises(AssertionError):
            chex.assert_trees_all_close(
                _train(chunk_m, state_m, mem, memory, mesh, 2).params, plain.params, rtol=0, atol=1e-4
            )


def test_chunk_with_the_three_traces_once_without_host_transfers(model):
    mesh = step_lib.make_mesh(2)
    wrap = lambda f: chex.assert_max_traces(f, n=1) if f is not None else None  # noqa: E731
    methods = tuple(
        m._replace(post_update=wrap(m.post_update)) for m in _methods(model, ("lines", "hft", "slow_learner"))
    )
    chunk, state, mem, memory = _chunk_setup(model, methods, mesh)
    on_device = [_new(mesh, memory, c) for c in range(3)]
    state, _ = chunk(state, *on_device[0], mem)  # compile outside the guard
    with jax.transfer_guard("disallow"):
        state, metrics = chunk(state, *on_device[1], mem)
        jax.block_until_ready((state, metrics))
    before = jax.device_get(state)
    state = TaskEndPass(methods, model, mesh)(state, memory[:32], seed=0, task=0)  # LiNeS edit, HFT's next mask
    ended = jax.device_get(state)
    assert int(ended.methods["hft"]["task"]) == 1
    chex.assert_trees_all_equal(ended.methods["lines"]["anchor"], ended.params)
    with pytest.raises(AssertionError):  # LiNeS moved the weights back toward the start
        chex.assert_trees_all_equal(ended.params, before.params)
    with jax.transfer_guard("disallow"):
        state, metrics = chunk(state, *on_device[2], mem)
        jax.block_until_ready((state, metrics))
    assert np.all(np.isfinite(np.asarray(metrics["loss"])))
    # negative control: a chunk built again traces the counted hook again
    again = step_lib.make_chunk_fn(
        model,
        hooks.with_transforms(methods, make_optimizer(optim_config(), 8)),
        replay_lib.make_replay("amr", max_arms=4, capacity=96, reference="arm"),
        mesh,
        step_lib.ChunkSpec(2, 4, 2),
        methods=methods,
    )
    with pytest.raises(AssertionError, match="trace"):
        again(state, *on_device[0], mem)


# ---------------------------------------------------------------- checkpoints, config, cost


def test_states_survive_a_checkpoint_round_trip(model, tmp_path):
    methods = _methods(model, ("lines", "hft", "slow_learner"))
    params = model.init(jax.random.key(0))
    states = hooks.init_states(methods, params)
    states, params = jax.jit(lambda s, p: hooks.task_end(methods, s, p, jax.random.key(1), jnp.zeros((0, 8))))(
        states, _tree(5, params)
    )
    tx = hooks.with_transforms(methods, make_optimizer(optim_config(), 8))
    state = TrainState(
        params=params,
        opt_state=tx.init(params),
        replay=replay_lib.make_replay("uniform", max_arms=2, capacity=8).init(),
        rng=jax.random.key(3),
        step=jnp.zeros((), jnp.int32),
        task=jnp.ones((), jnp.int32),
        skipped=jnp.zeros((), jnp.int32),
        methods=jax.tree.map(jnp.copy, states),
    )
    ckpt = RunCheckpoints(str(tmp_path / "ckpt"))
    ckpt.save(1, state, {})
    template = state.replace(methods=hooks.init_states(methods, state.params))
    restored, _ = ckpt.restore_latest(template)
    ckpt.close()
    chex.assert_trees_all_equal(jax.device_get(restored.methods), jax.device_get(state.methods))
    assert int(restored.methods["hft"]["task"]) == 1
    # negative control: the fresh template (task 0's mask, θ_0 anchor) differs from what was saved
    with pytest.raises(AssertionError):
        chex.assert_trees_all_equal(jax.device_get(template.methods), jax.device_get(state.methods))


@pytest.mark.parametrize(
    "key,value",
    [("lines_alpha", -0.1), ("lines_beta", 1.5), ("hft_seed", -1), ("slow_lr_ratio", 0.0)],
)
def test_config_check_names_the_bad_key(key, value):
    from amr.runner.config_check import ConfigError, validate

    cfg = tiny.get_config()
    cfg.methods = ("lines", "hft", "slow_learner")
    validate(cfg, 1)  # negative control: the defaults pass
    check_config(cfg)
    cfg.method[key] = value
    with pytest.raises(ConfigError, match=rf"method\.{key}"):
        validate(cfg, 1)


def test_their_work_is_measured_for_the_plan(model):
    """HFT's mask multiply is in the methods' per-step FLOPs; the slow learner's scale in the optimizer's
    extra FLOPs over the plain optimizer (both paid by zero-cost trimming, charged as selection)."""
    params = jax.eval_shape(model.init, jax.random.key(0))
    rows = jax.ShapeDtypeStruct((4, 8), jnp.int32)
    keys = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), 4))
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    hft_m = (hft(0),)
    states = jax.eval_shape(lambda p: hooks.init_states(hft_m, p), params)
    assert method_costs.step_flops(hft_m, states, params, rows, keys, 4, model) >= n_params
    plain_tx = make_optimizer(optim_config(), 8)
    plain = CostModel(model, plain_tx, params, jax.eval_shape(plain_tx.init, params))

    def extra(methods):
        tx = hooks.with_transforms(methods, plain_tx)
        return method_costs.optimizer_flops(plain, CostModel(model, tx, params, jax.eval_shape(tx.init, params)))

    backbone = sum(int(np.prod(x.shape)) for k, x in params.items() for x in jax.tree.leaves(x) if k != "head")
    assert extra((slow_learner(0.01),)) >= backbone
    assert extra((lines(0.5, 0.5),)) == 0.0  # negative control: no optimizer work, nothing charged
