"""The `Method` record: a companion continual-learning method as a few pure functions (optax-style).

A method composes with any replay policy. Each hook is optional except `init`:

  init(params) -> state                         its state, kept in `TrainState.methods[name]` (checkpointed)
  loss_term(state, params, batch_aux) -> f32[]  added to the training objective inside the chunk's step
  transform                                     an optax GradientTransformation chained before the optimizer
  after_step(state, params) -> state            inside the chunk, after the optimizer update (skipped steps too)
  task_end(state, params, key, rows) -> (state, params)
                                                jittable, at every task end but the last; `rows` are
                                                `task_end_rows` rows of the finished task's train data;
                                                its FLOPs are measured and charged to the ledger as selection
  eval_params(state, params) -> params          the parameters held-out evaluation uses (default: `params`)

`batch_aux` is a dict of the step's inputs on this device: `rows` (new rows then replay rows),
`keys` (one per row) and `num_new` (how many of `rows` are new-task rows).
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
