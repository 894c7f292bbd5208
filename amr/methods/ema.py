"""Weight EMA: an exponential moving average of the weights, used for held-out evaluation.

    after every optimizer step t:  m ← β·m + (1 − β)·θ_t,   m = 0 at the start
    evaluation uses                θ_ema = m / (1 − β^t)     (θ itself before the first step)

Debiased as `optax.ema(decay, debias=True)`: θ_ema is a normalised exponential average of the weights the
steps produced, never of the random initialisation (an EMA started at θ_0 gives it weight β^t: 0.53 after
640 steps at β = 0.999, so held-out losses were mostly those of the untrained network). Training itself
uses θ. β's horizon 1/(1 − β) should be shorter than a task: the default 0.99 (100 steps) against the
benchmarks' 160 steps per task.

**Adaptive β** (`adaptive=True`; Large Continual Instruction Assistant, Qiao et al., ICML 2025, arXiv
2410.10868). A second-order Taylor expansion of the loss around the EMA weights gives the weight of the new
parameters as a ratio of the first derivative to the product of the parameters' distance and the second
derivative, which the authors estimate per parameter tensor from two consecutive gradients. As their public
code (CoIN, `ema_update`) computes it, for each parameter tensor at step t:

    a = ‖θ_t − e‖₁,   b = ‖g_t‖₁,   c = ‖g_t − g_{t−1}‖₁,   α_t = 2(1 + b) / (a·c)
    e ← (1 − α_t)·e + α_t·θ_t   if 0 < α_t < 1,  else with α_t = 1 − β (the fixed β: their fallback 0.01)

with e = θ_1 after the first step (no earlier gradient: the fixed β, from e = θ_1) and evaluation on e.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from amr.methods.base import Method


def ema(beta: float, adaptive: bool = False) -> Method:
    """`beta` is β, the weight of the running average (with `adaptive`, the fallback of the adaptive β_t)."""
    if adaptive:
        return _adaptive_ema(beta)

    def init(params):
        return {"params": jax.tree.map(jnp.zeros_like, params), "count": jnp.zeros((), jnp.int32)}

    def after_step(state, params):
        avg = jax.tree.map(lambda e, p: beta * e + (1.0 - beta) * p, state["params"], params)
        return {"params": avg, "count": state["count"] + 1}

    def eval_params(state, params):
        count = state["count"]
        scale = 1.0 / (1.0 - jnp.asarray(beta, jnp.float32) ** jnp.maximum(count, 1).astype(jnp.float32))
        debiased = jax.tree.map(lambda e: (e * scale).astype(e.dtype), state["params"])
        return jax.tree.map(lambda d, p: jnp.where(count > 0, d, p), debiased, params)

    return Method("ema", init, after_step=after_step, eval_params=eval_params)


def adaptive_alpha(theta, avg, grad, prev_grad, beta: float):
    """α_t of one parameter tensor (module docstring): 2(1 + ‖g‖₁) / (‖θ − e‖₁·‖g − g'‖₁) if in (0, 1), else 1 − β."""
    a = jnp.sum(jnp.abs(theta - avg))
    b = jnp.sum(jnp.abs(grad))
    c = jnp.sum(jnp.abs(grad - prev_grad))
    denom = a * c
    alpha = 2.0 * (1.0 + b) / jnp.where(denom > 0, denom, 1.0)
    ok = (denom > 0) & (alpha > 0) & (alpha < 1) & jnp.isfinite(alpha)
    return jnp.where(ok, alpha, 1.0 - beta).astype(jnp.float32)


def _adaptive_ema(beta: float) -> Method:
    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return {"params": zeros, "grads": zeros, "count": jnp.zeros((), jnp.int32)}

    def after_step(state, params, grads):
        first = state["count"] == 0

        def one(e, p, g, g_prev):
            alpha = adaptive_alpha(p.astype(jnp.float32), e.astype(jnp.float32), g, g_prev, beta)
            moved = ((1.0 - alpha) * e + alpha * p).astype(e.dtype)
            return jnp.where(first, p, moved)

        avg = jax.tree.map(one, state["params"], params, grads, state["grads"])
        return {"params": avg, "grads": grads, "count": state["count"] + 1}

    def eval_params(state, params):
        return jax.tree.map(lambda e, p: jnp.where(state["count"] > 0, e, p), state["params"], params)

    return Method("ema", init, after_step=after_step, eval_params=eval_params, after_step_grads=True)
