"""Companion methods (amr.methods): their math against NumPy, off means off, state in checkpoints,
the chunk's transfer discipline, config checks and the ledger's charge for EWC's Fisher pass."""

import types

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amr.compute import ledger as budget
from amr.compute.plan import plan_strategy
from amr.io.checkpoint import RunCheckpoints
from amr.methods import check_config, hooks, make_methods
from amr.methods.ema import ema
from amr.methods.ewc import empirical_fisher, ewc
from amr.methods.l2sp import l2sp
from amr.models import default_model_config, make_model
from amr.replay import policies as replay_lib
from amr.train import chunk as step_lib
from amr.train.loop import Run
from amr.train.method_pass import TaskEndPass
from amr.train.state import make_optimizer
from configs import tiny
from tests.support import method_chunk
from tests.support.optim import optim_config
from tests.support.states import train_state

S, CAP = 2, 96


@pytest.fixture(scope="module")
def model():
    cfg = default_model_config("byte_lm")
    cfg.width, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.seq_len = 16, 1, 2, 32, 8
    return make_model(cfg)


def _rows(n, seq=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, seq)).astype(np.int32)


def _tree(seed, params):
    """A random tree shaped like `params` (NumPy float32 leaves)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: rng.normal(size=x.shape).astype(np.float32), params)


def _all_methods(model, **kw):
    cfg = tiny.get_config()
    cfg.methods = ("l2sp", "ewc", "ema")
    cfg.method.ewc_rows = 12
    cfg.method.update(kw)
    return make_methods(cfg, model)


# ---------------------------------------------------------------- math against NumPy / a loop


@pytest.mark.parametrize("jit", [False, True])
def test_fisher_is_the_mean_squared_per_example_gradient(model, jit):
    params = model.init(jax.random.key(0))
    rows = jnp.asarray(_rows(20))  # 20 rows: one full block of 16 and a padded one
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(5), i))(jnp.arange(20))

    def row_loss(p, row, key):
        return model.loss(p, row[None], key)[0]

    fisher_fn = jax.jit(empirical_fisher, static_argnums=0) if jit else empirical_fisher
    fisher = fisher_fn(row_loss, params, rows, keys)
    grads = [jax.grad(row_loss)(params, rows[i], keys[i]) for i in range(20)]  # one row at a time
    direct = jax.tree.map(lambda *g: np.mean(np.square(np.stack(g)), axis=0), *grads)
    chex.assert_trees_all_close(fisher, direct, rtol=1e-5, atol=1e-12)
    # negative control: dropping one row (the padded block's weights wrong) is visible
    without_last = jax.tree.map(lambda *g: np.mean(np.square(np.stack(g[:-1])), axis=0), *grads)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(fisher, without_last, rtol=1e-5, atol=1e-12)


def test_l2sp_and_ewc_loss_terms_equal_numpy(model):
    params = model.init(jax.random.key(0))
    theta, anchor, fisher = _tree(1, params), _tree(2, params), jax.tree.map(np.abs, _tree(3, params))
    sq = sum(np.sum((t - a) ** 2) for t, a in zip(jax.tree.leaves(theta), jax.tree.leaves(anchor)))
    weighted = sum(
        np.sum(f * (t - a) ** 2)
        for t, a, f in zip(jax.tree.leaves(theta), jax.tree.leaves(anchor), jax.tree.leaves(fisher))
    )
    pull = l2sp(0.3)
    first_task = pull.loss_term(pull.init(anchor), theta, None)
    assert float(first_task) == 0.0  # no pull before the first task end
    state, _ = pull.task_end(pull.init(params), anchor, None, None)
    np.testing.assert_allclose(float(jax.jit(pull.loss_term)(state, theta, None)), 0.15 * sq, rtol=1e-5)
    e = ewc(model, 0.7, 1.0, 4)
    term = jax.jit(e.loss_term)({"fisher": fisher, "anchor": anchor}, theta, None)
    np.testing.assert_allclose(float(term), 0.35 * weighted, rtol=1e-5)
    # negative control: the unweighted distance is a different number
    assert not np.isclose(float(term), 0.35 * sq, rtol=1e-3)


def test_ewc_task_end_decays_and_accumulates(model):
    params = model.init(jax.random.key(0))
    e = ewc(model, 1.0, 0.5, 6)
    rows = jnp.asarray(_rows(6))
    old = {"fisher": jax.tree.map(np.abs, _tree(4, params)), "anchor": _tree(5, params)}
    state, out_params = jax.jit(e.task_end)(old, params, jax.random.key(9), rows)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(9), i))(jnp.arange(6))
    new = empirical_fisher(lambda p, r, k: model.loss(p, r[None], k)[0], params, rows, keys)
    chex.assert_trees_all_close(state["fisher"], jax.tree.map(lambda f, n: 0.5 * f + n, old["fisher"], new), rtol=1e-5)
    chex.assert_trees_all_equal(state["anchor"], params)
    chex.assert_trees_all_equal(out_params, params)  # EWC leaves the weights alone


def test_ema_equals_numpy_debiased_ema(model):
    params = model.init(jax.random.key(0))
    m = ema(0.9)
    seq = [_tree(10 + i, params) for i in range(5)]
    state = m.init(seq[0])
    chex.assert_trees_all_equal(m.eval_params(state, seq[0]), seq[0])  # before any step: the weights themselves
    step = jax.jit(m.after_step)
    for p in seq[1:]:
        state = step(state, p)
    acc = jax.tree.map(np.zeros_like, seq[0])
    for p in seq[1:]:
        acc = jax.tree.map(lambda e, x: 0.9 * e + 0.1 * x, acc, p)
    ref = jax.tree.map(lambda e: e / (1 - 0.9**4), acc)
    chex.assert_trees_all_close(jax.jit(m.eval_params)(state, seq[-1]), ref, rtol=1e-5, atol=1e-6)
    # negative control: the EMA started at the initial weights (no correction) is another average
    anchored = jax.tree.map(np.copy, seq[0])
    for p in seq[1:]:
        anchored = jax.tree.map(lambda e, x: 0.9 * e + 0.1 * x, anchored, p)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(m.eval_params(state, seq[-1]), anchored, rtol=1e-5, atol=1e-6)


def test_ema_of_constant_weights_is_those_weights_whatever_the_start(model):
    """Debiased, the EMA of steps that all produce θ is θ: the initial weights carry no weight."""
    params = model.init(jax.random.key(0))
    m, theta = ema(0.999), _tree(3, params)
    state = m.init(_tree(4, params))
    for _ in range(3):
        state = m.after_step(state, theta)
    chex.assert_trees_all_close(m.eval_params(state, params), theta, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- inside the chunk


def _chunk_setup(model, methods, mesh):
    chunk, state, memory = method_chunk.amr_chunk(model, methods, mesh, S, 4, 2, CAP)
    return chunk, step_lib.replicate(mesh, state), step_lib.replicate(mesh, memory), memory


def _new(mesh, memory, c):
    return method_chunk.new_batches(mesh, memory, c, S, 4)


def _train(chunk, state, mem, memory, mesh, chunks):
    for c in range(chunks):
        state, _ = chunk(state, *_new(mesh, memory, c), mem)
    return jax.device_get(state)


@pytest.mark.slow
def test_methods_before_their_first_task_end_leave_training_bit_identical(model):
    """l2sp (inactive), ewc (zero Fisher) and ema (evaluation only) do not change a single bit of training
    before a task end; after one (anchor set, Fisher estimated) l2sp and ewc pull the weights."""
    mesh = step_lib.make_mesh(1)
    methods = _all_methods(model)
    chunk_p, state_p, mem, memory = _chunk_setup(model, (), mesh)
    plain = _train(chunk_p, state_p, mem, memory, mesh, 2)
    chunk, state, mem, memory = _chunk_setup(model, methods, mesh)
    with_methods = _train(chunk, state, mem, memory, mesh, 2)
    chex.assert_trees_all_equal(with_methods.params, plain.params)
    chex.assert_trees_all_equal(with_methods.opt_state, plain.opt_state)
    assert plain.methods == {} and set(with_methods.methods) == {"l2sp", "ewc", "ema"}
    # ... while the EMA moved (it is computed) and differs from the trained weights
    with pytest.raises(AssertionError):
        chex.assert_trees_all_equal(with_methods.methods["ema"]["params"], with_methods.params)
    # negative control: after a task end the pulls act and training differs
    pass_ = TaskEndPass(methods, model, mesh)
    ended = jax.device_get(pass_(step_lib.replicate(mesh, with_methods), memory[:32], seed=0, task=0))
    assert float(ended.methods["l2sp"]["active"]) == 1.0
    assert all(float(np.max(f)) > 0 for f in jax.tree.leaves(jax.device_get(ended.methods["ewc"]["fisher"])))
    strong = _all_methods(model, l2sp_lambda=50.0, ewc_lambda=1e4)
    chunk_s, _, _, _ = _chunk_setup(model, strong, mesh)
    pulled = _train(chunk_s, step_lib.replicate(mesh, ended), mem, memory, mesh, 1)
    free = _train(chunk_p, step_lib.replicate(mesh, ended.replace(methods={})), mem, memory, mesh, 1)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(pulled.params, free.params, atol=1e-6)


def _count_traces(m):
    """`m` with its chunk hooks wrapped by chex.assert_max_traces(n=1): a second trace of the chunk raises."""
    wrap = lambda f: chex.assert_max_traces(f, n=1) if f is not None else None  # noqa: E731
    return m._replace(loss_term=wrap(m.loss_term), after_step=wrap(m.after_step))


@pytest.mark.parametrize("ema_adaptive", [False, True])
def test_chunk_with_methods_makes_no_host_transfers_and_traces_once(model, ema_adaptive):
    chex.clear_trace_counter()  # the counters are per function name: the other parametrisation's traces count too
    mesh = step_lib.make_mesh(2)
    methods = tuple(_count_traces(m) for m in _all_methods(model, ema_adaptive=ema_adaptive))
    chunk, state, mem, memory = _chunk_setup(model, methods, mesh)
    on_device = [_new(mesh, memory, c) for c in range(4)]
    state, _ = chunk(state, *on_device[0], mem)  # compile outside the guard
    with jax.transfer_guard("disallow"):
        for new, ids in on_device[1:3]:
            state, metrics = chunk(state, new, ids, mem)
        jax.block_until_ready((state, metrics))
    # a task end (host side) gives back a replicated state of the same shapes: no retrace
    state = TaskEndPass(methods, model, mesh)(state, memory[:32], seed=0, task=0)
    with jax.transfer_guard("disallow"):
        state, metrics = chunk(state, *on_device[3], mem)
        jax.block_until_ready((state, metrics))
    chex.assert_shape(metrics["loss"], (S,))
    assert np.all(np.isfinite(np.asarray(metrics["loss"])))
    # negative control: a chunk built again (a new trace) trips the counters
    again = method_chunk.amr_chunk(model, methods, mesh, S, 4, 2, CAP)[0]
    with pytest.raises(AssertionError, match="trace"):
        again(state, *on_device[0], mem)


# ---------------------------------------------------------------- checkpoints


def _state_with_methods(model, methods):
    params = model.init(jax.random.key(0))
    states = hooks.init_states(methods, params)
    states, params = jax.jit(lambda s, p, r: hooks.task_end(methods, s, p, jax.random.key(1), r))(
        states, params, jnp.asarray(_rows(hooks.task_end_rows(methods)))
    )
    if "ema" in states:
        states["ema"] = {**states["ema"], "params": _tree(7, params), "count": jnp.asarray(3, jnp.int32)}
        if "grads" in states["ema"]:  # the adaptive EMA also keeps the last step's gradients
            states["ema"]["grads"] = _tree(8, params)
    tx = make_optimizer(optim_config(), 8)
    policy = replay_lib.make_replay("uniform", max_arms=2, capacity=8)
    return train_state(params, tx, policy.init(), methods=jax.tree.map(jnp.copy, states))


@pytest.mark.parametrize("ema_adaptive", [False, True])
def test_method_states_survive_a_checkpoint_round_trip(model, tmp_path, ema_adaptive):
    methods = _all_methods(model, ema_adaptive=ema_adaptive)
    state = _state_with_methods(model, methods)
    ckpt = RunCheckpoints(str(tmp_path / "ckpt"))
    ckpt.save(1, state, {"note": "x"})
    template = state.replace(methods=hooks.init_states(methods, state.params))  # what a resumed run starts from
    restored, host = ckpt.restore_latest(template)
    ckpt.close()
    assert host == {"note": "x"}
    chex.assert_trees_all_equal(jax.device_get(restored.methods), jax.device_get(state.methods))
    assert float(restored.methods["l2sp"]["active"]) == 1.0
    # negative control: the fresh template's method states differ from the saved ones (the check can fail)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_equal(jax.device_get(template.methods), jax.device_get(state.methods))


def test_a_run_without_methods_checkpoints_the_same_leaves(model, tmp_path):
    """`methods={}` adds no leaf: the checkpoint of a run without methods holds what it held before."""
    state = _state_with_methods(model, ()).replace(methods={})
    assert len(jax.tree.leaves(state)) == len(jax.tree.leaves((state.params, state.opt_state, state.replay))) + 4
    ckpt = RunCheckpoints(str(tmp_path / "ckpt"))
    ckpt.save(1, state, {})
    restored, _ = ckpt.restore_latest(state)
    ckpt.close()
    assert restored.methods == {}
    chex.assert_trees_all_equal(jax.device_get(restored.params), jax.device_get(state.params))


# ---------------------------------------------------------------- config checks


@pytest.mark.parametrize(
    "key,mutate",
    [
        ("methods", lambda c: setattr(c, "methods", ("ewc", "swa"))),
        ("methods", lambda c: setattr(c, "methods", ("ewc", "ewc"))),
        ("method.ewc_gamma", lambda c: setattr(c.method, "ewc_gamma", 1.5)),
        ("method.ewc_rows", lambda c: setattr(c.method, "ewc_rows", 0)),
        ("method.ema_beta", lambda c: setattr(c.method, "ema_beta", 1.0)),
        ("method.l2sp_lambda", lambda c: setattr(c.method, "l2sp_lambda", -1.0)),
    ],
)
def test_config_check_names_the_bad_key(key, mutate):
    from amr.runner.config_check import ConfigError, validate

    cfg = tiny.get_config()
    cfg.methods = ("ewc", "ema")
    validate(cfg, 1)  # negative control: the good config passes
    check_config(cfg)
    mutate(cfg)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg, 1)


def test_defaults_configure_no_method(model):
    cfg = tiny.get_config()
    assert tuple(cfg.methods) == () and make_methods(cfg, model) == ()


# ---------------------------------------------------------------- the ledger


def test_ledger_charges_the_fisher_pass_to_the_next_task(model):
    """`Run._methods_task_end` charges the measured task-end pass as selection to task t + 1; the
    charge follows the rows the Fisher is estimated on."""
    mesh = step_lib.make_mesh(1)
    flops = {}
    for rows in (16, 32):
        methods = _all_methods(model, ewc_rows=rows)
        state = step_lib.replicate(mesh, _state_with_methods(model, methods))
        task = types.SimpleNamespace(train=_rows(40))
        run = types.SimpleNamespace(
            task_end_pass=TaskEndPass(methods, model, mesh), ctx=types.SimpleNamespace(tasks=[task]), seed=0
        )
        ledger = budget.Ledger()
        ledger.start_task(0)
        after = Run._methods_task_end(run, state, ledger, 0)
        flops[rows] = run.task_end_pass.flops(state)
        assert ledger.per_task[1]["selection"] == flops[rows] > 0 and ledger.per_task[0]["selection"] == 0
        assert ledger.samples["selection"] == rows
        assert float(np.max(jax.tree.leaves(jax.device_get(after.methods["ewc"]["fisher"]))[0])) > 0
    # twice the rows, about twice the pass (per-example gradients dominate)
    assert 1.8 < flops[32] / flops[16] < 2.2
    # negative control: methods without a task-end pass charge nothing
    ema_only = tuple(m for m in _all_methods(model) if m.name == "ema")
    assert not TaskEndPass(ema_only, model, mesh)


def test_zero_cost_plan_pays_the_methods_work_by_trimming_new_rows():
    """A method's per-step and task-end FLOPs are trimmed from the new rows; without them nothing is."""
    cfg = tiny.get_config()  # 16 steps of 16 rows (2 replayed), zero_cost on
    costs = types.SimpleNamespace(train=lambda n: 100.0 * n, forward=lambda n: 30.0 * n, grad=lambda n: 70.0 * n)
    plain = plan_strategy(cfg, "uniform", costs, 1, 256)
    paid = plan_strategy(cfg, "uniform", costs, 1, 256, methods_cost=(50.0, 16 * 100.0 * 4))
    assert plain.trimmed_rows == 0 and plain.new_batch == 14
    # per task: 16 steps x 50 + 6400 = 7200 FLOPs = 4.5 rows per step at 100 a row: 5 rows trimmed
    assert paid.trimmed_rows == 5 and paid.new_batch == 9
    assert paid.boundary_selection_flops == 6400.0
    spent = 16 * costs.train(paid.new_batch + paid.replay_batch) + 16 * 50.0 + 6400.0
    assert spent <= plain.naive_task_flops
    cfg.replay.zero_cost = False  # negative control: nothing is trimmed when the protocol is off
    assert plan_strategy(cfg, "uniform", costs, 1, 256, methods_cost=(50.0, 6400.0)).trimmed_rows == 0
