"""GeRe: a fixed set of general rows whose last-layer activation states are kept by a threshold margin.

At the first task end, G = `gere_rows` rows of the first task (the task-end pass's seeded draw) become the
general set; their last-layer hidden states h* (one fixed mask key per row for the MAE) are cached, with
per-dimension statistics over all their positions: μ, σ (population), thresholds μ ± σ. Later task ends
keep the set. Every step afterwards runs `gere_batch` of the general rows (cycled in order) through the
model and adds λ · TM, the threshold-based margin loss on the current hidden states h:

    cached state    h* ≤ μ − σ              μ − σ < h* < μ + σ                      h* ≥ μ + σ
    penalty         relu(h − (μ − σ))       relu(h − (μ + σ)) + relu((μ − σ) − h)   relu((μ + σ) − h)
    TM = Σ penalties / (number of non-zero penalties + 1e-8)

(an activation keeps its state: below, inside or above the band). During the first task the loss is
0 (active = 0), though its forward pass on the not yet filled set still runs (and is paid).

Zhang et al., "GeRe: Towards Efficient Anti-Forgetting in Continual Learning of LLM via General Samples
Replay", arXiv 2508.04676; the TM loss, its normalisation, μ ± 1σ over all cached tokens and the margin
weight 100 follow the authors' code (github.com/Qznan/GeRe, `GeReTrainer.compute_gere_loss`, default
`w_strategy='100'`). Not implemented: their dynamic weight ('dy'), and their cross-entropy on the general
rows (here the replay policy decides what is replayed); their general set is 1,000 SlimPajama texts,
here rows of the first task.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from amr.methods.base import Method
from amr.methods.hooks import per_example_outputs

ROW_KEY_SEED = 7  # the general rows' fixed forward keys: fold_in(key(ROW_KEY_SEED), i) (the MAE's masks)


def band_thresholds(hidden):
    """(μ − σ, μ + σ) per hidden dimension over every row and position of `hidden` f32[G, T, D]."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    mean, std = jnp.mean(flat, axis=0), jnp.std(flat, axis=0)
    return mean - std, mean + std


def threshold_margin(hidden, cached, low, high):
    """GeRe's TM loss of current `hidden` against the `cached` states (same shape), thresholds `low`/`high` [D]."""
    below, above = cached <= low, cached >= high
    inside = ~below & ~above
    penalty = (
        below * jax.nn.relu(hidden - low)
        + inside * (jax.nn.relu(hidden - high) + jax.nn.relu(low - hidden))
        + above * jax.nn.relu(high - hidden)
    )
    nonzero = jax.lax.stop_gradient(jnp.sum((penalty != 0).astype(jnp.float32)))
    return jnp.sum(penalty) / (nonzero + 1e-8)


def gere(model, strength: float, rows: int, batch: int) -> Method:
    """`strength` λ, `rows` G (the general set), `batch` general rows per step."""
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(ROW_KEY_SEED), i))

    def hidden_of(params, general_rows, ids):
        return per_example_outputs(model, params, general_rows, keys(ids)).hidden

    def init(params):
        shape, dtype = (rows,) + tuple(model.example_shape), model.example_dtype
        hidden = jax.eval_shape(hidden_of, params, jnp.zeros(shape, dtype), jnp.arange(rows))
        width = hidden.shape[-1]
        return {
            "rows": jnp.zeros(shape, dtype),
            "hidden": jnp.zeros(hidden.shape, jnp.float32),
            "low": jnp.zeros((width,), jnp.float32),
            "high": jnp.zeros((width,), jnp.float32),
            "cursor": jnp.zeros((), jnp.int32),
            "active": jnp.zeros((), jnp.float32),
        }

    def loss_term(state, params, batch_aux):
        del batch_aux
        ids = (state["cursor"] + jnp.arange(batch)) % rows
        hidden = hidden_of(params, state["rows"][ids], ids)
        tm = threshold_margin(hidden, state["hidden"][ids], state["low"], state["high"])
        return state["active"] * strength * tm

    def after_step(state, params):
        del params
        return {**state, "cursor": (state["cursor"] + batch) % rows}

    def task_end(state, params, key, task_rows):
        del key
        hidden = hidden_of(params, task_rows, jnp.arange(rows))
        low, high = band_thresholds(hidden)
        first = {"rows": task_rows, "hidden": hidden, "low": low, "high": high}
        first.update(cursor=jnp.zeros((), jnp.int32), active=jnp.ones((), jnp.float32))
        is_first = state["active"] == 0
        return jax.tree.map(lambda f, s: jnp.where(is_first, f, s), first, state), params

    return Method("gere", init, loss_term=loss_term, after_step=after_step, task_end=task_end, task_end_rows=rows)
