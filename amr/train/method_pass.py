"""The methods' task-end pass in a run (`amr.methods`): rows of the finished task, one jitted call, its cost.

At the end of every task but the last, `TaskEndPass` picks `task_end_rows` rows of the finished
task (a seeded host draw: the same after a resume), runs every method's `task_end` in one jitted
call on the replicated state and returns a replicated state. Its FLOPs (XLA's cost analysis of that
call on global shapes, `amr.methods.costs.task_end_flops`) are what the ledger charges as selection
and what the plan adds to the boundary selection that zero-cost trimming pays for.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from amr.methods import costs as method_costs
from amr.methods import hooks
from amr.train import chunk as step_lib
from amr.train.distributed import put_global
from amr.train.state import TrainState


class TaskEndPass:
    def __init__(self, methods: tuple, model, mesh):
        self.methods, self.mesh = tuple(methods), mesh
        self.rows = hooks.task_end_rows(self.methods)
        self.example = (tuple(model.example_shape), model.example_dtype)
        self._fn = jax.jit(functools.partial(hooks.task_end, self.methods))
        self._flops = None

    def __bool__(self) -> bool:
        return hooks.has_task_end(self.methods)

    def pick_rows(self, train: np.ndarray, seed: int, task: int) -> np.ndarray:
        """`self.rows` rows of a task's train rows, a seeded draw without replacement (cycled if too few)."""
        order = np.random.default_rng([seed, task, 13]).permutation(len(train))
        return np.asarray(train)[order[np.arange(self.rows) % len(train)]]

    def abstract_rows(self) -> jax.ShapeDtypeStruct:
        shape, dtype = self.example
        return jax.ShapeDtypeStruct((self.rows,) + shape, dtype)

    def flops(self, state: TrainState) -> float:
        """One call's measured FLOPs (analysed once; `state` may be abstract)."""
        if self._flops is None:
            self._flops = method_costs.task_end_flops(self.methods, state.methods, state.params, self.abstract_rows())
        return self._flops

    def __call__(self, state: TrainState, train: np.ndarray, seed: int, task: int) -> TrainState:
        """The replicated state after every method's task end on task `task`'s rows."""
        rows = put_global(self.pick_rows(train, seed, task), NamedSharding(self.mesh, P()))
        key = jax.random.fold_in(jax.random.key(seed), 2000 + task)
        methods, params = self._fn(state.methods, state.params, key, rows)
        # a jitted copy: every leaf its own buffer (a hook may return params as its anchor too; states are donated)
        return step_lib.replicate(self.mesh, state.replace(methods=methods, params=params))
