"""Methods that read the model's outputs (amr.methods: distill, gere, migu) and `ModelSpec.outputs`, one
by one: their math against NumPy and what they read. Inside the chunk (traces, checkpoint, free embeddings,
cost, config): test_output_methods.py."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from amr.methods import hooks
from amr.methods.distill import distill
from amr.methods.gere import band_thresholds, gere, threshold_margin
from amr.methods.migu import mask_linear_grads, migu, top_units_mask
from amr.models import vit_mae
from amr.models.byte_lm import ByteLM
from tests.support.output_methods import random_images, random_tokens, row_keys


def _aux(model, params, rows, keys, num_new):
    outputs = hooks.per_example_outputs(model, params, jnp.asarray(rows), keys)
    return {"rows": jnp.asarray(rows), "keys": keys, "num_new": num_new, "outputs": outputs}


def _np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


# ---------------------------------------------------------------- ModelSpec.outputs (both models)


@pytest.mark.parametrize("jit", [False, True])
def test_outputs_are_the_loss_the_outputs_and_the_hidden_states_of_one_pass(model, mae, jit):
    """Loss = `spec.loss`; hidden = the module's own last hidden states; a linear layer's recorded magnitude
    is mean |output| over positions (the head's / decoder_pred's output is `out` itself)."""
    for spec, batch, key in ((model, random_tokens(3), None), (mae, random_images(3), jax.random.key(2))):
        fn = jax.jit(spec.outputs) if jit else spec.outputs
        params = spec.init(jax.random.key(0))
        out = fn(params, jnp.asarray(batch), key)
        np.testing.assert_allclose(out.loss, spec.loss(params, jnp.asarray(batch), key), rtol=1e-6)
        if spec is model:
            chex.assert_shape((out.out, out.hidden), [(3, 7, 256), (3, 7, 16)])
            hidden = spec.module.apply({"params": params}, jnp.asarray(batch)[:, :-1], method=ByteLM.hidden)
            last = out.layer_outputs[("head",)]
        else:
            chex.assert_shape((out.out, out.hidden), [(3, 4, 16), (3, 2, 16)])  # 4 patches; cls + 1 visible
            ids = vit_mae.shuffle_patches(key, 3, 4)
            hidden = spec.module.apply({"params": params}, jnp.asarray(batch), ids, method=vit_mae.ViTMAE.encode)
            last = out.layer_outputs[("decoder_pred",)]
        np.testing.assert_allclose(out.hidden, hidden, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(last, np.abs(np.asarray(out.out)).mean(axis=1), rtol=1e-5, atol=1e-7)
        # negative control: without the absolute value the magnitudes differ
        assert not np.allclose(last, np.asarray(out.out).mean(axis=1), rtol=1e-3)
        # every layer with a kernel (all linear layers) is recorded, under its params path
        kernels = {path[:-1] for path in traverse_util.flatten_dict(params) if path[-1] == "kernel"}
        assert set(out.layer_outputs) == kernels


# ---------------------------------------------------------------- distillation


@pytest.mark.parametrize("jit", [False, True])
def test_distill_kl_equals_numpy_and_reads_only_replayed_rows(model, jit):
    student, teacher = model.init(jax.random.key(0)), model.init(jax.random.key(1))
    d = distill(model, temperature=2.0, strength=0.5)
    state = {"teacher": teacher, "active": jnp.ones((), jnp.float32)}
    rows, keys = random_tokens(5), row_keys(5)

    def term(state, params, rows):  # 3 new rows, 2 replayed
        return d.loss_term(state, params, _aux(model, params, rows, keys, 3))

    term = jax.jit(term) if jit else term
    value = float(term(state, student, rows))
    zs = np.asarray(model.outputs(student, jnp.asarray(rows[3:])).out) / 2.0
    zt = np.asarray(model.outputs(teacher, jnp.asarray(rows[3:])).out) / 2.0
    log_p, log_q = _np_log_softmax(zt.astype(np.float64)), _np_log_softmax(zs.astype(np.float64))
    expected = 0.5 * 4.0 * np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1))
    np.testing.assert_allclose(value, expected, rtol=1e-4)
    # a changed new row changes nothing; a changed replayed row does (negative control)
    new_changed, replay_changed = rows.copy(), rows.copy()
    new_changed[0] = (new_changed[0] + 1) % 256
    replay_changed[4] = (replay_changed[4] + 1) % 256
    assert float(term(state, student, new_changed)) == value
    assert float(term(state, student, replay_changed)) != pytest.approx(value)
    # student == teacher: zero; inactive (before the first task end): zero
    same = {"teacher": student, "active": jnp.ones((), jnp.float32)}
    assert float(term(same, student, rows)) == pytest.approx(0.0, abs=1e-7)
    assert value > 1e-4  # negative control of the zero: different weights give a positive KL
    assert float(term(d.init(teacher), student, rows)) == 0.0


def test_distill_on_the_mae_is_the_reconstruction_mse_under_the_same_masks(mae):
    student, teacher = mae.init(jax.random.key(0)), mae.init(jax.random.key(1))
    d = distill(mae, temperature=2.0, strength=1.5)
    rows, keys = random_images(4), row_keys(4)
    state = {"teacher": teacher, "active": jnp.ones(())}
    value = float(jax.jit(lambda x: d.loss_term(state, student, _aux(mae, student, x, keys, 2)))(rows))

    def recon(params, i, key):
        return np.asarray(mae.outputs(params, jnp.asarray(rows[i : i + 1]), key).out[0])

    s = np.stack([recon(student, i, keys[i]) for i in (2, 3)])
    t = np.stack([recon(teacher, i, keys[i]) for i in (2, 3)])
    np.testing.assert_allclose(value, 1.5 * np.mean((s - t) ** 2), rtol=1e-5)
    # negative control: matched on the new rows instead of the replayed ones, the number differs
    s_new, t_new = (np.stack([recon(p, i, keys[i]) for i in (0, 1)]) for p in (student, teacher))
    assert not np.isclose(value, 1.5 * np.mean((s_new - t_new) ** 2), rtol=1e-3)


# ---------------------------------------------------------------- GeRe


def _np_tm(h, cached, low, high):
    relu = lambda x: np.maximum(x, 0.0)  # noqa: E731
    below, above = cached <= low, cached >= high
    inside = ~below & ~above
    pen = below * relu(h - low) + inside * (relu(h - high) + relu(low - h)) + above * relu(high - h)
    return pen.sum() / ((pen != 0).sum() + 1e-8)


def test_gere_thresholds_and_tm_loss_equal_numpy():
    rng = np.random.default_rng(0)
    cached = rng.normal(size=(3, 5, 4)).astype(np.float32)
    low, high = band_thresholds(jnp.asarray(cached))
    flat = cached.reshape(-1, 4)
    np.testing.assert_allclose(low, flat.mean(0) - flat.std(0), rtol=1e-5)
    np.testing.assert_allclose(high, flat.mean(0) + flat.std(0), rtol=1e-5)
    h = cached + rng.normal(size=cached.shape).astype(np.float32)
    tm = jax.jit(threshold_margin)(jnp.asarray(h), jnp.asarray(cached), low, high)
    np.testing.assert_allclose(float(tm), _np_tm(h, cached, np.asarray(low), np.asarray(high)), rtol=1e-5)
    # unchanged states: zero; one activation moved across its threshold: positive (negative control)
    assert float(threshold_margin(jnp.asarray(cached), jnp.asarray(cached), low, high)) == 0.0
    b, t, d = np.argwhere(cached >= np.asarray(high))[0]
    moved = cached.copy()
    moved[b, t, d] = float(high[d]) - 0.5
    assert float(threshold_margin(jnp.asarray(moved), jnp.asarray(cached), low, high)) == pytest.approx(0.5, rel=1e-5)


@pytest.mark.parametrize("name", ["model", "mae"])
def test_gere_keeps_the_first_tasks_general_set_and_penalises_drift(name, request):
    model = request.getfixturevalue(name)  # byte_lm, vit_mae (hidden states under fixed per-row masks)
    params = model.init(jax.random.key(0))
    g = gere(model, strength=2.0, rows=6, batch=4)
    data = random_tokens if name == "model" else random_images
    first, second = jnp.asarray(data(6, seed=1)), jnp.asarray(data(6, seed=2))
    end = jax.jit(g.task_end)
    state, out_params = end(g.init(params), params, jax.random.key(0), first)
    chex.assert_trees_all_equal(out_params, params)
    np.testing.assert_array_equal(state["rows"], first)
    hidden = hooks.per_example_outputs(
        model, params, first, jax.vmap(lambda i: jax.random.fold_in(jax.random.key(7), i))(jnp.arange(6))
    ).hidden
    np.testing.assert_allclose(state["hidden"], hidden, rtol=1e-5, atol=1e-6)
    later, _ = end(state, model.init(jax.random.key(3)), jax.random.key(1), second)
    chex.assert_trees_all_equal(later, state)  # a later task end keeps the set, its states and thresholds
    with pytest.raises(AssertionError):  # negative control: the set did get filled at the first task end
        chex.assert_trees_all_equal(g.init(params), state)
    term = jax.jit(g.loss_term)
    assert float(term(state, params, None)) < 1e-5  # the cached model itself: every state kept (to rounding)
    assert float(term(state, model.init(jax.random.key(4)), None)) > 0.0  # another model drifts
    # the loss term reads rows cursor, cursor+1, ... (mod G): after_step moves the cursor by gere_batch
    assert int(g.after_step(g.after_step(state, params), params)["cursor"]) == 8 % 6


# ---------------------------------------------------------------- MIGU


def test_migu_mask_is_the_top_fraction_of_l1_normalised_magnitudes():
    rng = np.random.default_rng(0)
    mags = rng.random((3, 2, 5)).astype(np.float32)
    mask = np.asarray(jax.jit(top_units_mask, static_argnums=1)(jnp.asarray(mags), 0.3))
    normalised = (mags / mags.sum()).reshape(-1)
    k = int(np.ceil(0.3 * normalised.size))  # 9 of 30
    expected = np.zeros(normalised.size, np.float32)
    expected[np.argsort(-normalised)[:k]] = 1.0
    np.testing.assert_array_equal(mask, expected.reshape(mags.shape))
    assert mask.sum() == 9
    # negative control: the bottom units are a different mask
    bottom = np.zeros(normalised.size, np.float32)
    bottom[np.argsort(normalised)[:k]] = 1.0
    assert not np.array_equal(mask, bottom.reshape(mags.shape))
    # masking a layer: kernel [in, *units] and bias [*units] keep only the kept units' gradients
    grads = {"layer": {"kernel": jnp.ones((4, 3, 2, 5)), "bias": jnp.ones((3, 2, 5))}, "other": jnp.ones((7,))}
    masked = mask_linear_grads(grads, {("layer",): jnp.asarray(mags)}, 0.3)
    np.testing.assert_array_equal(masked["layer"]["kernel"], np.broadcast_to(mask, (4, 3, 2, 5)))
    np.testing.assert_array_equal(masked["layer"]["bias"], mask)
    np.testing.assert_array_equal(masked["other"], np.ones(7))


@pytest.mark.slow
def test_migu_sgd_step_moves_only_the_kept_units(model):
    """With MIGU active a plain SGD step changes a linear layer's weights only for the units whose mean |output|
    (from the same forward pass) is in the top fraction; without MIGU every unit moves."""
    params = model.init(jax.random.key(0))
    m = migu(0.25)
    state = m.task_end(m.init(params), params, None, None)[0]
    rows, keys = jnp.asarray(random_tokens(4)), row_keys(4)

    def sgd(states, methods):
        fn = lambda p: hooks.step_objective(model, methods, states, p, rows, keys, 4)  # noqa: E731
        grads, (_, layer_outputs, _) = jax.grad(fn, has_aux=True)(params)
        grads = hooks.edit_grads(methods, states, grads, layer_outputs)
        return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)

    stepped, free = jax.jit(lambda s: sgd(s, (m,)))({"migu": state}), sgd({}, ())
    outs = model.outputs(params, rows)
    for layer in (("transformer", "block0", "mlp", "fc1"), ("head",)):
        mags = np.asarray(outs.layer_outputs[layer]).mean(0)
        keep = np.zeros(mags.size, bool)
        keep[np.argsort(-(mags / mags.sum()))[: int(np.ceil(0.25 * mags.size))]] = True
        before, after, unmasked = (np.asarray(_kernel(t, layer)) for t in (params, stepped, free))
        moved = np.any(after != before, axis=0)
        assert not moved[~keep].any() and moved[keep].all()
        assert np.any(unmasked != before, axis=0)[~keep].all()  # negative control: without the mask they move


def _kernel(tree, layer):
    for name in layer:
        tree = tree[name]
    return tree["kernel"]
