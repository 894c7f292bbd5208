"""The `Method` record: a companion continual-learning method as a few pure functions (optax-style).

A method composes with any replay policy. Each hook is optional except `init`:

  init(params) -> state                         its state, kept in `TrainState.methods[name]` (checkpointed)
  loss_term(state, params, batch_aux) -> f32[]  added to the training objective inside the chunk's step
  transform                                     an optax GradientTransformation chained before the optimizer
  after_step(state, params) -> state            inside the chunk, after the optimizer update (skipped steps too)
                                                (`after_step_grads`: after_step(state, params, grads), with the
                                                step's gradients as the optimizer got them)
  task_end(state, params, key, rows) -> (state, params)
                                                jittable, at every task end but the last; `rows` are
                                                `task_end_rows` rows of the finished task's train data;
                                                its FLOPs are measured and charged to the ledger as selection
  eval_params(state, params) -> params          the parameters held-out evaluation uses (default: `params`)
  edit_grads(state, grads, layer_outputs) -> grads
                                                inside the chunk, on the step's averaged (pmean'd) gradients
                                                before the optimizer; `layer_outputs` are the step forward's
                                                linear-layer output magnitudes, averaged over the global batch
                                                ({layer path: f32[*features]}, `amr.models.outputs`; needs
                                                `needs_outputs`, else {})
  needs_outputs                                 the step's forward runs `model.outputs` instead of `model.loss`
                                                (same loss), so `batch_aux["outputs"]` holds its
                                                `ModelOutputs` (leading row axis) and `edit_grads` gets
                                                `layer_outputs`, with no second forward pass
  post_update(state, updates) -> updates        inside the chunk, on the optimizer's updates before they are
                                                applied (e.g. HFT's 0/1 mask of frozen matrices: a frozen
                                                parameter does not move, whatever the optimizer's moments say)
  wrap_optimizer(tx) -> tx                      static, around the whole optimizer (after `transform`s are
                                                chained before it), e.g. the slow learner's per-group scale

`batch_aux` is a dict of the step's inputs on this device: `rows` (new rows then replay rows),
`keys` (one per row), `num_new` (how many of `rows` are new-task rows) and `outputs` (the step's
`ModelOutputs` when a configured method `needs_outputs`, else None; differentiable).

One chunk step, in order: the forward pass (`model.loss`; `model.outputs` when a method `needs_outputs`;
with free embeddings the same pass also pools the new rows' embeddings), the mean loss plus every
`loss_term`, the gradients averaged over devices, `edit_grads` on them, the optimizer (`transform`s chained
before it, all of it wrapped by `wrap_optimizer`s), `post_update` on its updates, the update applied
(skipped if not finite), `after_step`. Hooks of several methods run in the configured order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import optax


class Method(NamedTuple):
    name: str
    init: Callable[[Any], Any]
    loss_term: Callable | None = None
    transform: optax.GradientTransformation | None = None
    after_step: Callable | None = None
    task_end: Callable | None = None
    task_end_rows: int = 0  # rows of the finished task that `task_end` reads (0: it reads none)
    eval_params: Callable | None = None
    post_update: Callable | None = None
    wrap_optimizer: Callable | None = None
    edit_grads: Callable | None = None
    needs_outputs: bool = False  # the step's forward also returns ModelOutputs (batch_aux["outputs"], edit_grads)
    after_step_grads: bool = False  # after_step also gets the step's gradients (the adaptive weight EMA)
