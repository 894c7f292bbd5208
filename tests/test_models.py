"""Tests for amr.models: shapes, causality, masking, row independence, training."""

import functools
import json.decoder
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import flax.linen as nn
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

from amr.models import ModelSpec, count_params, default_model_config, layers, make_model, vit_mae

NAMES = ("byte_lm", "vit_mae")


def tiny_config(name, **overrides):
    cfg = default_model_config(name)
    cfg.update(width=32, depth=2, heads=2, mlp_dim=64)
    if name == "byte_lm":
        cfg.seq_len = 32
    else:  # 8x8 grey digits, 2x2 patches -> 16 patches, 4 visible; one block each
        cfg.update(depth=1, image_size=8, channels=1, patch_size=2, decoder_width=16, decoder_depth=1, decoder_heads=2)
    cfg.update(**overrides)
    return cfg


@functools.cache
def _digits():
    return load_digits().images / 16.0


def real_batch(name, batch_size, offset=0):
    """Real data: bytes of a stdlib source file, or sklearn's 8x8 digits."""
    if name == "byte_lm":
        with open(json.decoder.__file__, "rb") as f:
            data = np.frombuffer(f.read(), np.uint8)
        starts = 97 * (np.arange(batch_size) + offset)
        return jnp.asarray(np.stack([data[s : s + 32] for s in starts]), jnp.int32)
    digits = _digits()[offset : offset + batch_size]
    return jnp.asarray(digits[..., None], jnp.float32)


class Tiny(NamedTuple):
    """A tiny float32 model, its params and jitted functions, compiled once."""

    name: str
    spec: ModelSpec
    params: Any
    loss: Callable  # jit(spec.loss)
    embed: Callable  # jit(spec.embed)
    apply: Callable  # jit(module.apply): byte_lm logits, vit_mae (pred, mask)


def _loss_and_grad(spec):
    return jax.jit(jax.value_and_grad(lambda p, batch, key: spec.loss(p, batch, key).mean()))


@functools.cache
def tiny(name) -> Tiny:
    spec = make_model(tiny_config(name))
    # An "unsafe_rbg" key compiles init ~3x faster on CPU than threefry (its ~40
    # hashes are unrolled); `init` takes any key (see test_init_keys).
    params = jax.jit(spec.init)(jax.random.key(0, impl="unsafe_rbg"))
    apply = jax.jit(lambda p, *a: spec.module.apply({"params": p}, *a))
    return Tiny(name, spec, params, jax.jit(spec.loss), jax.jit(spec.embed), apply)


@pytest.fixture(params=NAMES)
def model(request) -> Tiny:
    return tiny(request.param)


B = 4  # one batch size everywhere (plus 2 for sub-batches): fewer compilations

# ---------------------------------------------------------------- shapes


def test_shapes_and_dtypes(model):
    spec, params = model.spec, model.params
    batch = real_batch(model.name, B)
    chex.assert_shape(batch, (B, *spec.example_shape))
    assert batch.dtype == spec.example_dtype
    loss_B = model.loss(params, batch, jax.random.key(1))
    emb_BxD = model.embed(params, batch)
    chex.assert_shape(loss_B, (B,))
    chex.assert_shape(emb_BxD, (B, 32))
    chex.assert_type([loss_B, emb_BxD], jnp.float32)
    chex.assert_tree_all_finite((loss_B, emb_BxD))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))


def test_init_keys(model):
    init = jax.jit(model.spec.init)
    key = jax.random.key(0, impl="unsafe_rbg")
    chex.assert_trees_all_equal(init(key), model.params)
    other = jax.tree.leaves(init(jax.random.key(1, impl="unsafe_rbg")))
    assert any(np.any(np.asarray(a) != np.asarray(b)) for a, b in zip(other, jax.tree.leaves(model.params)))
    # Default (threefry) keys give the same structure, shapes and dtypes.
    chex.assert_trees_all_equal_shapes_and_dtypes(jax.eval_shape(model.spec.init, jax.random.key(0)), model.params)


@pytest.mark.parametrize("name", NAMES)
def test_jitted_init_equals_eager_init(name):
    """`spec.init` is jitted (one compile at startup) and gives the eager init's params bit for bit."""
    spec = make_model(tiny_config(name))
    key = jax.random.key(3)  # threefry, as a run uses
    eager = spec.init.__wrapped__(key)  # the un-jitted init, op by op
    chex.assert_trees_all_equal(spec.init(key), eager)
    lowered = spec.init.lower(key).as_text()
    assert "optimization_barrier" in lowered  # one program (the barrier of layers.normal_init inside it)


def test_normal_init_is_flax_normal_and_jit_stable():
    """Negative control: flax's normal initializer rounds differently under jit (XLA folds sqrt(2) * stddev
    into one constant), so the check above can fail; `layers.normal_init` equals it eagerly and under jit."""
    key, shape = jax.random.key(0), (64, 32)
    flax_normal = nn.initializers.normal(stddev=0.02)
    ours = layers.normal_init(stddev=0.02)
    jit = lambda f: jax.jit(f, static_argnums=1)
    assert not np.array_equal(jit(flax_normal)(key, shape), flax_normal(key, shape))
    np.testing.assert_array_equal(ours(key, shape), flax_normal(key, shape))
    np.testing.assert_array_equal(jit(ours)(key, shape), ours(key, shape))


def test_jit_matches_eager_loss(model):
    """Op-by-op (non-jit) runs compile every primitive separately: keep them few."""
    batch, key = real_batch(model.name, B), jax.random.key(2)
    chex.assert_trees_all_close(
        model.loss(model.params, batch, key), model.spec.loss(model.params, batch, key), rtol=1e-5
    )


@pytest.mark.slow
def test_jit_matches_eager_embed(model):
    batch = real_batch(model.name, B)
    chex.assert_trees_all_close(
        model.embed(model.params, batch), model.spec.embed(model.params, batch), rtol=1e-5, atol=1e-6
    )


def test_byte_lm_logits_and_initial_loss():
    model = tiny("byte_lm")
    tokens = real_batch("byte_lm", B)
    logits = model.apply(model.params, tokens)
    chex.assert_shape(logits, (B, 32, 256))
    loss_B = model.loss(model.params, tokens, None)
    # Near-uniform predictions at init: log(256) = 5.545 nats/byte.
    np.testing.assert_allclose(loss_B, math.log(256), atol=0.15)
    # The loss is the mean NLL of tokens 1..L-1 given their prefixes (causality,
    # tested below, makes the logits of the full row valid for its prefix).
    logp = np.asarray(jax.nn.log_softmax(logits[:, :-1]))
    ref = -np.take_along_axis(logp, np.asarray(tokens[:, 1:, None]), -1)[..., 0]
    chex.assert_trees_all_close(loss_B, ref.mean(1), rtol=1e-5)


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_params(model):
    spec16 = make_model(tiny_config(model.name, dtype="bfloat16"))
    shapes = jax.eval_shape(spec16.init, jax.random.key(0))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(shapes))
    chex.assert_trees_all_equal_shapes(shapes, model.params)
    batch, key = real_batch(model.name, B), jax.random.key(1)
    loss16 = jax.jit(spec16.loss)(model.params, batch, key)
    chex.assert_type(loss16, jnp.float32)
    chex.assert_trees_all_close(loss16, model.loss(model.params, batch, key), rtol=0.05)


# ---------------------------------------------------------------- causality


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(t=st.integers(0, 31), new=st.integers(0, 255))
def test_byte_lm_is_causal(t, new):
    model = tiny("byte_lm")
    tokens = real_batch("byte_lm", B)
    hypothesis.assume(int(tokens[0, t]) != new)
    changed = tokens.at[0, t].set(new)
    before = model.apply(model.params, tokens)
    after = model.apply(model.params, changed)
    # Positions before t never see token t ...
    chex.assert_trees_all_close(before[0, :t], after[0, :t], atol=1e-6, rtol=0)
    # ... position t and later do, and the other rows are untouched.
    assert np.abs(np.asarray(before[0, t:] - after[0, t:])).max() > 1e-4
    chex.assert_trees_all_close(before[1:], after[1:], atol=1e-6, rtol=0)


# ---------------------------------------------------------------- MAE masking


def _pixels_of_patches(patch_ids, grid=4, p=2):
    """Boolean 8x8 image mask of the given patch indices."""
    m = np.zeros((grid * p, grid * p), bool)
    for i in patch_ids:
        r, c = divmod(int(i), grid)
        m[r * p : (r + 1) * p, c * p : (c + 1) * p] = True
    return m


def test_mae_masks_and_loss_only_on_masked_patches():
    model = tiny("vit_mae")
    params = model.params
    images, key = real_batch("vit_mae", B), jax.random.key(3)
    pred, mask = model.apply(params, images, key)
    chex.assert_shape([pred, mask], [(B, 16, 4), (B, 16)])
    # 75% of 16 patches are hidden, exactly, in every row; rows differ.
    np.testing.assert_array_equal(np.asarray(mask).sum(1), 12)
    assert len({tuple(np.asarray(m)) for m in mask}) > 1
    ids = vit_mae.shuffle_patches(key, B, 16)
    chex.assert_trees_all_equal(mask, vit_mae.patch_mask(ids, 4))

    # Loss = mean over hidden patches of the per-patch MSE of the predictions
    # against per-patch normalised pixels (norm_pix_loss=True).
    target = np.asarray(vit_mae.patchify(images, 2))
    target = (target - target.mean(-1, keepdims=True)) / np.sqrt(target.var(-1, keepdims=True) + 1e-6)
    err = ((np.asarray(pred) - target) ** 2).mean(-1)
    m = np.asarray(mask)
    loss = model.loss(params, images, key)
    chex.assert_trees_all_close(loss, (err * m).sum(1) / m.sum(1), rtol=1e-5)

    encode = jax.jit(
        lambda x: model.spec.module.apply(  # noqa: E731
            {"params": params}, x, ids, method=vit_mae.ViTMAE.encode
        )
    )
    hidden_px = np.stack([_pixels_of_patches(np.flatnonzero(r)) for r in m])
    noise = jax.random.uniform(jax.random.key(4), images.shape)
    # Changing hidden pixels: the encoder and the predictions cannot see it, the
    # loss (through the targets) does.
    changed = jnp.where(hidden_px[..., None], noise, images)
    chex.assert_trees_all_close(encode(changed), encode(images), atol=1e-6)
    chex.assert_trees_all_close(model.apply(params, changed, key)[0], pred, atol=1e-6)
    assert np.all(np.abs(np.asarray(model.loss(params, changed, key) - loss)) > 1e-4)
    # Changing visible pixels changes what the encoder sees.
    changed = jnp.where(~hidden_px[..., None], noise, images)
    assert np.abs(np.asarray(encode(changed) - encode(images))).max() > 1e-3


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**31 - 1), n_keep=st.integers(1, 15))
def test_masked_mse_ignores_visible_patches(seed, n_keep):
    rng = np.random.default_rng(seed)
    pred, target = rng.normal(size=(2, 3, 16, 5)).astype(np.float32)
    mask = np.stack([rng.permutation(16) >= n_keep for _ in range(3)]).astype(np.float32)
    loss = vit_mae.masked_mse(pred, target, mask)
    vis = (mask == 0)[..., None]
    other = rng.normal(size=(2, 3, 16, 5)).astype(np.float32) * 10
    loss2 = vit_mae.masked_mse(np.where(vis, other[0], pred), np.where(vis, other[1], target), mask)
    chex.assert_trees_all_close(loss, loss2, rtol=1e-6)
    # Changing a hidden patch does change the loss.
    row, patch = 0, int(np.flatnonzero(mask[0])[0])
    bumped = target.copy()
    bumped[row, patch] += 10.0
    assert float(vit_mae.masked_mse(pred, bumped, mask)[0]) > float(loss[0])


@pytest.mark.slow
def test_mae_without_masked_patches_reconstructs_all():
    spec = make_model(tiny_config("vit_mae", mask_ratio=0.0, norm_pix_loss=False))
    params = tiny("vit_mae").params
    images, key = real_batch("vit_mae", 2), jax.random.key(0)
    pred, mask = jax.jit(lambda p, x, k: spec.module.apply({"params": p}, x, k))(params, images, key)
    assert float(mask.sum()) == 0.0
    ref = ((pred - vit_mae.patchify(images, 2)) ** 2).mean((1, 2))
    chex.assert_trees_all_close(jax.jit(spec.loss)(params, images, key), ref, rtol=1e-5)


def test_norm_pix_targets():
    images = real_batch("vit_mae", 3)
    t = vit_mae.patch_targets(images, 2, norm_pix_loss=True)
    flat = np.asarray(vit_mae.patchify(images, 2))
    ok = flat.std(-1) > 0.05  # near-constant patches are dominated by eps
    np.testing.assert_allclose(np.asarray(t).mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(t).std(-1)[ok], 1, atol=1e-2)
    chex.assert_trees_all_equal(vit_mae.patch_targets(images, 2, False), flat)


def test_patchify_layout():
    x = jnp.arange(4 * 4 * 2, dtype=jnp.float32).reshape(1, 4, 4, 2)
    p = vit_mae.patchify(x, 2)
    chex.assert_shape(p, (1, 4, 8))
    # Patch 1 is rows 0-1, columns 2-3, in (row, column, channel) order.
    np.testing.assert_array_equal(p[0, 1], np.asarray(x[0, 0:2, 2:4]).reshape(-1))


def test_num_kept():
    assert vit_mae.num_kept(196, 0.75) == 49
    assert vit_mae.num_kept(16, 0.99) == 1  # at least one visible patch
    assert vit_mae.num_kept(16, 0.0) == 16


# ---------------------------------------------------------------- independence


def test_rows_are_independent(model):
    params, key = model.params, jax.random.key(7)
    batch = real_batch(model.name, B)
    mixed = batch.at[1:].set(real_batch(model.name, B, offset=10)[1:])
    chex.assert_trees_all_close(
        model.loss(params, mixed, key)[0], model.loss(params, batch, key)[0], atol=1e-6, rtol=1e-6
    )
    chex.assert_trees_all_close(model.embed(params, mixed)[0], model.embed(params, batch)[0], atol=1e-6, rtol=1e-6)
    # A sub-batch gives the same rows (other batch size: allow reassociation).
    chex.assert_trees_all_close(
        model.loss(params, batch[:2], key), model.loss(params, batch, key)[:2], rtol=1e-5, atol=1e-6
    )
    chex.assert_trees_all_close(model.embed(params, batch[:2]), model.embed(params, batch)[:2], rtol=1e-5, atol=1e-5)


def test_masks_follow_the_key(model):
    """vit_mae draws new masks from a new key; byte_lm ignores the key."""
    batch = real_batch(model.name, B)
    a = model.loss(model.params, batch, jax.random.key(0))
    b = model.loss(model.params, batch, jax.random.key(1))
    assert (model.name == "vit_mae") == bool(np.any(np.asarray(a) != np.asarray(b)))


@pytest.mark.slow
def test_remat_matches_plain(model):
    batch, key = real_batch(model.name, B), jax.random.key(1)
    remat = make_model(tiny_config(model.name, remat=True))
    chex.assert_trees_all_close(
        _loss_and_grad(remat)(model.params, batch, key),
        _loss_and_grad(model.spec)(model.params, batch, key),
        rtol=1e-5,
        atol=1e-6,
    )


# ---------------------------------------------------------------- training


def test_a_few_steps_reduce_loss(model):
    """Adam on one fixed batch (and fixed masks) fits it; one trace for all steps."""
    opt = optax.adam(3e-3)
    chex.clear_trace_counter()  # `step` below is one function per parametrization

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(params, opt_state, batch, key):
        loss, grads = jax.value_and_grad(lambda p: model.spec.loss(p, batch, key).mean())(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    batch, key = real_batch(model.name, B), jax.random.key(5)
    params, opt_state, losses = model.params, opt.init(model.params), []
    for _ in range(25):
        params, opt_state, loss = step(params, opt_state, batch, key)
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0], losses


# ---------------------------------------------------------------- sizes


def _block(d, m):
    return 4 * d * d + 2 * d * m + 9 * d + m


def _expected_params(cfg):
    d = cfg.width
    enc = cfg.depth * _block(d, cfg.mlp_dim) + 2 * d
    if cfg.name == "byte_lm":
        return 256 * d + cfg.seq_len * d + enc + d * 256 + 256
    e, ppc = cfg.decoder_width, cfg.patch_size**2 * cfg.channels
    dec = cfg.decoder_depth * _block(e, 4 * e) + 2 * e
    return ppc * d + d + d + enc + d * e + e + e + dec + e * ppc + ppc


@pytest.mark.parametrize("name", NAMES)
def test_tpu_sized_configs_construct_abstractly(name):
    cfg = default_model_config(name, "base")
    assert cfg.dtype == "bfloat16" and cfg.remat
    spec = make_model(cfg)
    shapes = jax.eval_shape(spec.init, jax.random.key(0))  # no allocation
    n = count_params(shapes)
    print(f"{name} base: {n:,} parameters")
    assert n == _expected_params(cfg)
    # MAE ViT-B/16 + 512x8 decoder: the paper's 111.9M minus its frozen positions.
    assert n == {"byte_lm": 304_933_120, "vit_mae": 111_655_680}[name]
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(shapes))
    batch = jax.ShapeDtypeStruct((2, *spec.example_shape), spec.example_dtype)
    out = jax.eval_shape(spec.loss, shapes, batch, jax.random.key(0))
    chex.assert_shape(out, (2,))
    assert out.dtype == jnp.float32


def test_tiny_param_count_formula(model):
    assert count_params(model.params) == _expected_params(tiny_config(model.name))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "name,overrides,match",
    [
        ("byte_lm", dict(name="foo"), r"model\.name: unknown model 'foo'"),
        ("byte_lm", dict(heads=3), r"model\.heads must divide model\.width"),
        ("byte_lm", dict(width=0), r"model\.width"),
        ("byte_lm", dict(depth=1.5), r"model\.depth"),
        ("byte_lm", dict(mlp_dim=-4), r"model\.mlp_dim"),
        ("byte_lm", dict(seq_len=1), r"model\.seq_len"),
        ("byte_lm", dict(dtype="float16"), r"model\.dtype"),
        ("byte_lm", dict(remat=1), r"model\.remat"),
        ("vit_mae", dict(patch_size=3), r"model\.patch_size must divide model\.image_size"),
        ("vit_mae", dict(mask_ratio=1.0), r"model\.mask_ratio"),
        ("vit_mae", dict(mask_ratio=-0.1), r"model\.mask_ratio"),
        ("vit_mae", dict(decoder_heads=3), r"model\.decoder_heads must divide"),
        ("vit_mae", dict(channels=0), r"model\.channels"),
        ("vit_mae", dict(norm_pix_loss="yes"), r"model\.norm_pix_loss"),
    ],
)
def test_bad_config_names_the_key(name, overrides, match):
    cfg = tiny_config(name).to_dict()
    cfg.update(overrides)
    with pytest.raises(ValueError, match=match):
        make_model(ml_collections.ConfigDict(cfg))


def test_missing_and_unknown_keys():
    cfg = tiny_config("vit_mae").to_dict()
    del cfg["decoder_depth"]
    with pytest.raises(ValueError, match=r"model\.decoder_depth: missing"):
        make_model(ml_collections.ConfigDict(cfg))
    cfg = tiny_config("byte_lm").to_dict()
    cfg["widht"] = 64
    with pytest.raises(ValueError, match=r"model\.widht: unknown key"):
        make_model(ml_collections.ConfigDict(cfg))
    with pytest.raises(ValueError, match="name"):
        default_model_config("foo")
    with pytest.raises(ValueError, match="size"):
        default_model_config("byte_lm", "huge")


def test_bad_batch_shape(model):
    bad = jnp.zeros((2, 64), jnp.int32) if model.name == "byte_lm" else jnp.zeros((2, 8, 8, 3), jnp.float32)
    with pytest.raises(ValueError, match="batch"):
        model.loss(model.params, bad, jax.random.key(0))
    with pytest.raises(ValueError, match="batch"):
        model.spec.embed(model.params, bad)


def test_config_is_snapshotted():
    cfg = tiny_config("byte_lm")
    spec = make_model(cfg)
    cfg.seq_len = 8
    assert spec.example_shape == (32,)
    chex.assert_shape(jax.eval_shape(spec.init, jax.random.key(0))["pos_embed"], (32, 32))
