"""Weight EMA: an exponential moving average of the weights, used for held-out evaluation.

    after every optimizer step: θ_ema ← β·θ_ema + (1 − β)·θ,   θ_ema = θ_0 at the start

Fixed β (no bias correction; training itself uses θ). Large Continual Instruction Assistant
(Qiao et al., arXiv 2410.10868) balances old and new parameters by an EMA whose β_t it derives
adaptively from gradients; that adaptive β_t is not implemented here, only the fixed-β EMA.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from amr.methods.base import Method


def ema(beta: float) -> Method:
    """`beta` is β, the weight of the running average."""

    def init(params):
        return {"params": jax.tree.map(jnp.copy, params)}

    def after_step(state, params):
        avg = jax.tree.map(lambda e, p: beta * e + (1.0 - beta) * p, state["params"], params)
        return {"params": avg}

    def eval_params(state, params):
        del params
        return state["params"]

    return Method("ema", init, after_step=after_step, eval_params=eval_params)
