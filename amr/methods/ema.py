"""Weight EMA: an exponential moving average of the weights, used for held-out evaluation.

    after every optimizer step t:  m ← β·m + (1 − β)·θ_t,   m = 0 at the start
    evaluation uses                θ_ema = m / (1 − β^t)     (θ itself before the first step)

Debiased as `optax.ema(decay, debias=True)`: θ_ema is a normalised exponential average of the weights the
steps produced, never of the random initialisation (an EMA started at θ_0 gives it weight β^t: 0.53 after
640 steps at β = 0.999, so held-out losses were mostly those of the untrained network). Training itself
uses θ. β's horizon 1/(1 − β) should be shorter than a task: the default 0.99 (100 steps) against the
benchmarks' 160 steps per task.

Large Continual Instruction Assistant (Qiao et al., arXiv 2410.10868) balances old and new parameters by an
EMA whose β_t it derives adaptively from gradients; that adaptive β_t is not implemented here, only the
fixed-β EMA.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from amr.methods.base import Method


def ema(beta: float) -> Method:
    """`beta` is β, the weight of the running average."""

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
