"""Methods that read the model's outputs (amr.methods: distill, gere, migu) in training: off before their
first task end, one trace under the transfer guard, state through a checkpoint, config checks and the
measured cost of the teacher's pass; with free embeddings and the other methods' hooks (post_update,
wrap_optimizer), one forward pass and one chunk. Their math against NumPy: test_output_methods_math.py."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amr.compute import measure
from amr.compute.costs import CostModel
from amr.io.checkpoint import RunCheckpoints
from amr.methods import check_config, hooks, make_methods
from amr.methods import costs as method_costs
from amr.methods.migu import migu
from amr.replay import policies as replay_lib
from amr.train import chunk as step_lib
from amr.train import free_embeddings as free_lib
from amr.train.method_pass import TaskEndPass
from amr.train.state import make_optimizer
from configs import tiny
from tests.support import method_chunk
from tests.support.optim import optim_config
from tests.support.output_methods import random_images, random_tokens, row_keys
from tests.support.states import train_state

S, CAP, NEW, REPLAY = 2, 96, 4, 2
NAMES = ("distill", "gere", "migu")


def _methods(model, names=NAMES, **kw):
    cfg = tiny.get_config()
    cfg.methods = names
    cfg.method.gere_rows, cfg.method.gere_batch = 6, 4
    cfg.method.update(kw)
    return make_methods(cfg, model)


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


@pytest.mark.slow
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
    rows = jnp.asarray(random_tokens(hooks.task_end_rows(methods)))
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
    rows, keys = (
        jnp.asarray(random_tokens(4) if spec is not request.getfixturevalue("mae") else random_images(4)),
        row_keys(4),
    )
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


@pytest.mark.slow
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


@pytest.mark.slow
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
    rows, keys = jax.ShapeDtypeStruct((12, 8), jnp.int32), jax.eval_shape(lambda: row_keys(12))
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
