"""The weight EMA's adaptive β_t (arXiv 2410.10868, `method.ema_adaptive`): its math against NumPy per
parameter tensor, its fallback to the fixed β, and the chunk handing it each step's gradients."""

import chex
import jax
import ml_collections
import numpy as np
import pytest

from amr.methods import make_methods
from amr.methods.ema import adaptive_alpha, ema
from amr.train import chunk as step_lib
from configs import tiny
from tests.support import method_chunk

BETA = 0.99


def _steps(n, scale, seed=0):
    """n steps of (θ_t, g_t) for two tensors: 'big' (α_t in (0, 1)) and 'small' (α_t > 1: the fallback)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        theta = {"big": scale * rng.normal(size=(4, 8)), "small": 1e-3 * rng.normal(size=(3,))}
        grad = {"big": scale * rng.normal(size=(4, 8)), "small": 1e-3 * rng.normal(size=(3,))}
        out.append(jax.tree.map(lambda x: x.astype(np.float32), (theta, grad)))
    return out


def _numpy_adaptive(steps, beta):
    """The update as the module docstring states it, one tensor at a time; also the α_t of every step."""
    e, g_prev, alphas = None, None, []
    for theta, grad in steps:
        if e is None:
            e = {k: v.astype(np.float64) for k, v in theta.items()}
        else:
            step_alpha = {}
            for k in theta:
                a = np.abs(theta[k] - e[k]).sum()
                b = np.abs(grad[k]).sum()
                c = np.abs(grad[k] - g_prev[k]).sum()
                alpha = 2 * (1 + b) / (a * c) if a * c > 0 else np.inf
                alpha = alpha if 0 < alpha < 1 else 1 - beta
                e[k] = (1 - alpha) * e[k] + alpha * theta[k]
                step_alpha[k] = alpha
            alphas.append(step_alpha)
        g_prev = grad
    return e, alphas


@pytest.mark.parametrize("jit", [True, False])
def test_adaptive_ema_equals_numpy(jit):
    steps = _steps(6, scale=10.0)
    m = ema(BETA, adaptive=True)
    state = m.init(steps[0][0])
    chex.assert_trees_all_equal(m.eval_params(state, steps[0][0]), steps[0][0])  # before any step: θ itself
    after = jax.jit(m.after_step) if jit else m.after_step
    for theta, grad in steps:
        state = after(state, theta, grad)
    ref, alphas = _numpy_adaptive(steps, BETA)
    chex.assert_trees_all_close(m.eval_params(state, steps[-1][0]), ref, rtol=1e-4, atol=1e-6)
    # both branches ran: 'big' moved by its own α_t in (0, 1), 'small' by the fallback 1 − β
    assert all(0 < a["big"] < 1 - BETA for a in alphas)
    assert all(a["small"] == pytest.approx(1 - BETA) for a in alphas)
    # negative control: the fixed-β debiased EMA of the same weights is another average
    fixed = ema(BETA)
    fstate = fixed.init(steps[0][0])
    for theta, _ in steps:
        fstate = fixed.after_step(fstate, theta)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(fixed.eval_params(fstate, steps[-1][0]), ref, rtol=1e-4, atol=1e-6)


def test_adaptive_alpha_cases():
    x = np.ones((2, 2), np.float32)
    # a·c = 4·4 = 16, b = 4: α = 2·5/16 = 0.625
    assert float(adaptive_alpha(2 * x, x, x, 2 * x, BETA)) == pytest.approx(0.625)
    assert float(adaptive_alpha(x, x, x, 2 * x, BETA)) == pytest.approx(1 - BETA)  # θ = e: a = 0
    assert float(adaptive_alpha(2 * x, x, x, x, BETA)) == pytest.approx(1 - BETA)  # same gradient: c = 0
    assert float(adaptive_alpha(1.1 * x, x, x, 2 * x, BETA)) == pytest.approx(1 - BETA)  # α > 1


def test_config_switch_and_the_chunk_passes_gradients(model):
    """`method.ema_adaptive=True` builds the adaptive EMA; inside a chunk it keeps the last step's gradients
    and its average differs from the fixed-β run's (negative control: the switch changes something)."""
    cfg = tiny.get_config()
    cfg.methods = ("ema",)
    fixed = make_methods(cfg, model)
    cfg.method.ema_adaptive = True
    adaptive = make_methods(cfg, model)
    assert adaptive[0].after_step_grads and not fixed[0].after_step_grads
    mesh = step_lib.make_mesh(1)
    out = {}
    for name, methods in (("fixed", fixed), ("adaptive", adaptive)):
        chunk, state, memory = method_chunk.amr_chunk(model, methods, mesh, 2, 4, 2, 96)
        state, mem = step_lib.replicate(mesh, state), step_lib.replicate(mesh, memory)
        for c in range(2):
            state, _ = chunk(state, *method_chunk.new_batches(mesh, memory, c, 2, 4), mem)
        out[name] = jax.device_get(state)
    got = out["adaptive"].methods["ema"]
    assert int(got["count"]) == 4
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(got["params"]))
    assert any(float(np.abs(g).sum()) > 0 for g in jax.tree.leaves(got["grads"]))  # the step's gradients arrived
    chex.assert_trees_all_equal(out["adaptive"].params, out["fixed"].params)  # evaluation only: training unchanged
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(got["params"], out["fixed"].methods["ema"]["params"], rtol=1e-3, atol=1e-5)


def test_bad_switch_is_named():
    cfg = tiny.get_config()
    cfg.methods = ("ema",)
    with pytest.raises(TypeError, match="ema_adaptive"):  # ConfigDict keeps the field's bool type
        cfg.method.ema_adaptive = 1
    cfg.method = ml_collections.ConfigDict({**cfg.method.to_dict(), "ema_adaptive": "yes"})  # e.g. from JSON
    with pytest.raises(ValueError, match="method.ema_adaptive: must be True or False, got 'yes'"):
        make_methods(cfg, None)
