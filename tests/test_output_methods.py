"""Methods that read the model's outputs (amr.methods: distill, gere, migu) and `ModelSpec.outputs`:
their math against NumPy, what they read, off before their first task end, one trace under the transfer
guard, state through a checkpoint, config checks and the measured cost of the teacher's pass; with free
embeddings and the other methods' hooks (post_update, wrap_optimizer), one forward pass and one chunk."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from amr.compute import measure
from amr.compute.costs import CostModel
from amr.io.checkpoint import RunCheckpoints
from amr.methods import check_config, hooks, make_methods
from amr.methods import costs as method_costs
from amr.methods.distill import distill
from amr.methods.gere import band_thresholds, gere, threshold_margin
from amr.methods.migu import mask_linear_grads, migu, top_units_mask
from amr.models import default_model_config, make_model, vit_mae
from amr.models.byte_lm import ByteLM
from amr.replay import policies as replay_lib
from amr.train import chunk as step_lib
from amr.train import free_embeddings as free_lib
from amr.train.method_pass import TaskEndPass
from amr.train.state import make_optimizer
from configs import tiny
from tests.support import method_chunk
from tests.support.optim import optim_config
from tests.support.states import train_state

S, CAP, NEW, REPLAY = 2, 96, 4, 2
NAMES = ("distill", "gere", "migu")


@pytest.fixture(scope="module")
def model():
    cfg = default_model_config("byte_lm")
    cfg.width, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.seq_len = 16, 1, 2, 32, 8
    return make_model(cfg)


@pytest.fixture(scope="module")
def mae():
    cfg = default_model_config("vit_mae")
    cfg.update(width=16, depth=1, heads=2, mlp_dim=32, image_size=8, channels=1, patch_size=4)
    cfg.update(decoder_width=16, decoder_depth=1, decoder_heads=2)
    return make_model(cfg)


def _tokens(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 8)).astype(np.int32)


def _images(n, seed=0):
    return np.random.default_rng(seed).random((n, 8, 8, 1)).astype(np.float32)


def _keys(n, seed=5):
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(n))


def _methods(model, names=NAMES, **kw):
    cfg = tiny.get_config()
    cfg.methods = names
    cfg.method.gere_rows, cfg.method.gere_batch = 6, 4
    cfg.method.update(kw)
    return make_methods(cfg, model)


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
    for spec, batch, key in ((model, _tokens(3), None), (mae, _images(3), jax.random.key(2))):
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
    rows, keys = _tokens(5), _keys(5)

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
    rows, keys = _images(4), _keys(4)
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
    data = _tokens if name == "model" else _images
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


def test_migu_sgd_step_moves_only_the_kept_units(model):
    """With MIGU active a plain SGD step changes a linear layer's weights only for the units whose mean |output|
    (from the same forward pass) is in the top fraction; without MIGU every unit moves."""
    params = model.init(jax.random.key(0))
    m = migu(0.25)
    state = m.task_end(m.init(params), params, None, None)[0]
    rows, keys = jnp.asarray(_tokens(4)), _keys(4)

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


# ---------------------------------------------------------------- inside the chunk


def _chunk_setup(model, methods, mesh, replay=REPLAY):
    return method_chunk.amr_chunk(model, methods, mesh, S, NEW, replay, CAP)


def _new(mesh, memory, c):
    return method_chunk.new_batches(mesh, memory, c, S, NEW)


def _train(chunk, state, memory, mesh, chunks, first=0):
    mem = step_lib.replicate(mesh, memory)
    state = step_lib.replicate(mesh, state)
    for c in range(first, first + chunks):
        state, _ = chunk(state, *_new(mesh, memory, c), mem)
    return jax.device_get(state)


def test_before_their_first_task_end_the_methods_leave_training_bit_identical(model):
    """distill (no teacher), gere (no general set) and migu (no mask) change no bit of training during the
    first task, although their work runs; after a task end each changes training."""
    mesh = step_lib.make_mesh(1)
    plain_chunk, plain_state, memory = _chunk_setup(model, (), mesh)
    plain = _train(plain_chunk, plain_state, memory, mesh, 2)
    methods = _methods(model)
    chunk, state, _ = _chunk_setup(model, methods, mesh)
    trained = _train(chunk, state, memory, mesh, 2)
    chex.assert_trees_all_equal(trained.params, plain.params)
    chex.assert_trees_all_equal(trained.opt_state, plain.opt_state)
    # negative control: after a task end each method alone makes training differ from the plain run
    ended = jax.device_get(TaskEndPass(methods, model, mesh)(step_lib.replicate(mesh, trained), memory[:32], 0, 0))
    free = _train(plain_chunk, ended.replace(methods={}), memory, mesh, 1, first=2)
    for name in NAMES:
        alone = _methods(model, (name,), gere_lambda=1e3)
        chunk_1, _, _ = _chunk_setup(model, alone, mesh)
        one = _train(chunk_1, ended.replace(methods={name: ended.methods[name]}), memory, mesh, 1, first=2)
        with pytest.raises(AssertionError):
            chex.assert_trees_all_close(one.params, free.params, atol=1e-7)


def _count_traces(m):
    wrap = lambda f: chex.assert_max_traces(f, n=1) if f is not None else None  # noqa: E731
    return m._replace(loss_term=wrap(m.loss_term), after_step=wrap(m.after_step), edit_grads=wrap(m.edit_grads))


def test_chunk_with_output_methods_makes_no_host_transfers_and_traces_once(model):
    mesh = step_lib.make_mesh(2)
    methods = tuple(_count_traces(m) for m in _methods(model))
    chunk, state, memory = _chunk_setup(model, methods, mesh)
    state, mem = step_lib.replicate(mesh, state), step_lib.replicate(mesh, memory)
    on_device = [_new(mesh, memory, c) for c in range(3)]
    state, _ = chunk(state, *on_device[0], mem)  # compile outside the guard
    state = TaskEndPass(methods, model, mesh)(state, memory[:32], seed=0, task=0)  # every method active
    assert all(float(state.methods[n]["active"]) == 1.0 for n in NAMES)
    with jax.transfer_guard("disallow"):
        for new, ids in on_device[1:]:
            state, metrics = chunk(state, new, ids, mem)
        jax.block_until_ready((state, metrics))
    assert np.all(np.isfinite(np.asarray(metrics["loss"])))
    # negative control: building the chunk again (a new trace) trips the counters
    again = method_chunk.amr_chunk(model, methods, mesh, S, NEW, REPLAY, CAP)[0]
    with pytest.raises(AssertionError, match="trace"):
        again(state, *on_device[0], mem)


def test_output_method_states_survive_a_checkpoint_round_trip(model, tmp_path):
    methods = _methods(model)
    params = model.init(jax.random.key(0))
    states = hooks.init_states(methods, params)
    rows = jnp.asarray(_tokens(hooks.task_end_rows(methods)))
    states, params = jax.jit(lambda s, p: hooks.task_end(methods, s, p, jax.random.key(1), rows))(states, params)
    policy = replay_lib.make_replay("uniform", max_arms=2, capacity=8)
    tx = make_optimizer(optim_config(), 8)
    state = train_state(params, tx, policy.init(), methods=jax.tree.map(jnp.copy, states))
    ckpt = RunCheckpoints(str(tmp_path / "ckpt"))
    ckpt.save(1, state, {})
    template = state.replace(methods=hooks.init_states(methods, params))
    restored, _ = ckpt.restore_latest(template)
    ckpt.close()
    chex.assert_trees_all_equal(jax.device_get(restored.methods), jax.device_get(state.methods))
    np.testing.assert_array_equal(restored.methods["gere"]["rows"], rows[:6])  # the general set itself
    with pytest.raises(AssertionError):  # negative control: the template's states differ
        chex.assert_trees_all_equal(jax.device_get(template.methods), jax.device_get(state.methods))


# ---------------------------------------------------------------- with free embeddings and the other hooks


@pytest.mark.parametrize("name", ["model", "mae"])
def test_one_forward_gives_the_loss_the_free_embedding_and_the_outputs(name, request):
    """With a method that needs outputs and free embeddings, the step's objective runs `model.outputs` once
    (neither `loss` nor `loss_and_embed`): its losses are `loss`'s bit for bit and its embeddings
    `loss_and_embed`'s (= `train_embed`'s); without `embed` there are none."""
    spec = request.getfixturevalue(name)
    params = spec.init(jax.random.key(0))
    rows, keys = jnp.asarray(_tokens(4) if spec is not request.getfixturevalue("mae") else _images(4)), _keys(4)
    calls = []

    def counted(*args):
        calls.append(1)
        return spec.outputs(*args)

    def refuse(*args):
        raise AssertionError("a second forward pass")

    probe = spec._replace(outputs=counted, loss=refuse, loss_and_embed=refuse)
    methods = (migu(0.5),)
    states = hooks.init_states(methods, params)
    _, (losses, layer_outputs, emb) = hooks.step_objective(probe, methods, states, params, rows, keys, 4, True)
    assert len(calls) == 1 and layer_outputs
    np.testing.assert_array_equal(losses, hooks.per_example(spec.loss, params, rows, keys))
    want_loss, want_emb = hooks.per_example(spec.loss_and_embed, params, rows, keys)
    np.testing.assert_array_equal(losses, want_loss)
    np.testing.assert_allclose(emb, want_emb, rtol=1e-6, atol=1e-7)
    train_emb = free_lib.per_example_train_embeddings(spec, params, rows, keys)
    np.testing.assert_allclose(emb, train_emb, rtol=1e-5, atol=1e-6)
    # without methods the forward is loss_and_embed; without `embed`, no embeddings
    _, (plain_losses, plain_layers, plain_emb) = hooks.step_objective(spec, (), {}, params, rows, keys, 4, True)
    np.testing.assert_array_equal(plain_emb, want_emb)
    np.testing.assert_array_equal(plain_losses, want_loss)
    assert plain_layers == {}
    assert hooks.step_objective(spec, methods, states, params, rows, keys, 4)[1][2] is None
    # negative control: another row's embedding is not this one's
    assert not np.allclose(emb[0], emb[1], rtol=1e-3)


def test_free_embeddings_ride_with_every_kind_of_method_hook_in_the_chunk(model):
    """distill (outputs, loss term on replayed rows), migu (edit_grads), hft (post_update) and slow_learner
    (wrap_optimizer), all active, on 2 devices: free embeddings train bit-identically to paid ones and only
    add the buffer; it holds every new row, step 0's at the chunk's starting params (last visit)."""
    mesh = step_lib.make_mesh(2)
    names = ("distill", "migu", "hft", "slow_learner")
    methods = _methods(model, names)
    chunk, state, memory = _chunk_setup(model, methods, mesh)
    state = jax.device_get(TaskEndPass(methods, model, mesh)(step_lib.replicate(mesh, state), memory[:32], 0, 0))
    assert float(state.methods["distill"]["active"]) == float(state.methods["migu"]["active"]) == 1.0
    mem = step_lib.replicate(mesh, memory)
    new, ids = _new(mesh, memory, 0)  # ids 32 .. 32 + S*NEW: one visit each

    def run(s):
        out, metrics = chunk(step_lib.replicate(mesh, s), new, ids, mem)
        return jax.device_get((out, metrics))

    paid, paid_metrics = run(state)
    free, free_metrics = run(state.replace(embeddings=free_lib.empty(S * NEW, 16, 32)))
    assert paid.embeddings is None and np.all(free.embeddings.seen)
    chex.assert_trees_all_equal(paid_metrics, free_metrics)
    chex.assert_trees_all_equal(paid.replace(rng=None), free.replace(rng=None, embeddings=None))
    # step 0's rows: the training forward's pooling at the chunk's starting params, with the step's keys
    _, _, step_key = step_lib.chunk_keys(state.rng, state.step)
    keys = step_lib._row_keys(jax.random.fold_in(step_key, 0), 0, NEW)
    rows_0 = jnp.asarray(memory[32 : 32 + NEW])
    want = free_lib.per_example_train_embeddings(model, state.params, rows_0, keys)
    chex.assert_trees_all_close(free.embeddings.emb[:NEW], want, atol=1e-5, rtol=1e-5)
    # negative control: the chunk's updated params are not those the rows were embedded at
    after = free_lib.per_example_train_embeddings(model, free.params, rows_0, keys)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(free.embeddings.emb[:NEW], after, atol=1e-5, rtol=1e-5)
    # and the methods changed training (the comparison above is not of two plain runs)
    plain_chunk, _, _ = _chunk_setup(model, (), mesh)
    plain, _ = jax.device_get(
        plain_chunk(step_lib.replicate(mesh, state.replace(methods={}, opt_state=_plain_opt(state))), new, ids, mem)
    )
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(plain.params, paid.params, atol=1e-7)


def _plain_opt(state):
    return make_optimizer(optim_config(), steps_per_task=8).init(state.params)


# ---------------------------------------------------------------- cost


def test_the_teachers_pass_is_measured_about_one_forward_on_the_replayed_rows(model):
    """The chunk with distill measures about one forward pass on the replayed rows more than without (the
    student's outputs come from the step's own forward); the plan's per-step prediction agrees, and is
    ~0 when no row is replayed (negative control)."""
    mesh = step_lib.make_mesh(1)
    flops = {}
    for names in ((), ("distill",)):
        methods = _methods(model, names) if names else ()
        chunk, state, memory = _chunk_setup(model, methods, mesh, replay=8)
        args = (
            measure.abstract(state),
            jax.ShapeDtypeStruct((S, NEW, 8), jnp.int32),
            jax.ShapeDtypeStruct((S, NEW), jnp.int32),
            jax.ShapeDtypeStruct(memory.shape, jnp.int32),
        )
        flops[names] = measure.loop_flops(chunk, *args)
    params = model.init(jax.random.key(0))
    tx = make_optimizer(optim_config(), 8)
    forward = CostModel(model, tx, params, tx.init(params)).forward(8)
    extra_per_step = (flops[("distill",)] - flops[()]) / S
    assert 0.8 < extra_per_step / forward < 2.0, (extra_per_step, forward)
    methods = _methods(model, ("distill",))
    states = hooks.init_states(methods, params)
    rows, keys = jax.ShapeDtypeStruct((12, 8), jnp.int32), jax.eval_shape(lambda: _keys(12))
    predicted = method_costs.step_flops(methods, states, params, rows, keys, 4, model)
    assert 0.8 < predicted / forward < 2.0, (predicted, forward)
    nothing_replayed = method_costs.step_flops(methods, states, params, rows, keys, 12, model)
    assert nothing_replayed < 0.05 * forward


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "key,value",
    [
        ("distill_temperature", 0.0),
        ("distill_lambda", -1.0),
        ("gere_lambda", -0.5),
        ("gere_rows", 0),
        ("gere_batch", -1),
        ("migu_fraction", 0.0),
        ("migu_fraction", 1.5),
    ],
)
def test_config_check_names_the_bad_key(key, value):
    from amr.runner.config_check import ConfigError, validate

    cfg = tiny.get_config()
    cfg.methods = NAMES
    validate(cfg, 1)  # negative control: the defaults pass
    check_config(cfg)
    setattr(cfg.method, key, value)
    with pytest.raises(ConfigError, match=rf"method\.{key}"):
        validate(cfg, 1)
