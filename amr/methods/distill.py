"""Distillation on the replayed rows: the model at the last task end teaches the model in training.

On the step's replayed rows only (`batch_aux["rows"][num_new:]`), with the teacher θ* (a snapshot of the
parameters at the last task end) and the student's outputs from the step's own forward pass:

    byte_lm (logits):        λ · T² · mean over rows and positions of KL(softmax(z*/T) ‖ softmax(z/T))
    vit_mae (reconstructions): λ · mean over rows, patches and pixels of (x̂ − x̂*)²

θ* ← θ and active ← 1 at every task end (no teacher during the first task, when nothing is replayed).
The teacher's forward pass runs inside the chunk on the replayed rows (the same per-row masks as the
student's for the MAE), so the ledger measures it and zero-cost trimming pays for it.

Li & Hoiem, "Learning without Forgetting", ECCV 2016, arXiv 1606.09282 (KL at temperature T = 2, scaled
by T² as in Hinton et al. 2015); Buzzega et al., "Dark Experience for General Continual Learning"
(DER/DER++), NeurIPS 2020, arXiv 2004.07211: matching outputs on replayed rows. The MAE's outputs are
regressions, not a distribution, so it is matched DER-style by mean squared error (DER stores the
logits; here the teacher is recomputed from the task-end snapshot).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from amr.methods.base import Method
from amr.methods.hooks import per_example_outputs


def tempered_kl(teacher_logits, student_logits, temperature: float):
    """T² · mean over every leading axis of KL(softmax(teacher/T) ‖ softmax(student/T)) over the last axis."""
    log_p = jax.nn.log_softmax(teacher_logits / temperature, axis=-1)
    log_q = jax.nn.log_softmax(student_logits / temperature, axis=-1)
    kl = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
    return temperature**2 * jnp.mean(kl)


def output_mse(teacher_out, student_out):
    return jnp.mean(jnp.square(student_out - teacher_out))


def distill(model, temperature: float, strength: float) -> Method:
    """`temperature` T (logits only), `strength` λ."""
    if model.output_kind == "logits":
        match = lambda teacher, student: tempered_kl(teacher, student, temperature)  # noqa: E731
    elif model.output_kind == "reconstruction":
        match = output_mse
    else:
        raise ValueError(f"distill: model outputs of kind {model.output_kind!r} have no distillation loss")

    def init(params):
        return {"teacher": jax.tree.map(jnp.copy, params), "active": jnp.zeros((), jnp.float32)}

    def loss_term(state, params, batch_aux):
        del params  # the student's outputs come from the step's forward pass
        n_new = batch_aux["num_new"]
        if batch_aux["rows"].shape[0] == n_new:  # no replayed rows (static): nothing to distil
            return jnp.zeros((), jnp.float32)
        student = batch_aux["outputs"].out[n_new:]
        teacher_params = jax.lax.stop_gradient(state["teacher"])
        teacher = per_example_outputs(model, teacher_params, batch_aux["rows"][n_new:], batch_aux["keys"][n_new:])
        return state["active"] * strength * match(jax.lax.stop_gradient(teacher.out), student)

    def task_end(state, params, key, rows):
        del state, key, rows
        return {"teacher": params, "active": jnp.ones((), jnp.float32)}, params

    return Method("distill", init, loss_term=loss_term, task_end=task_end, needs_outputs=True)
