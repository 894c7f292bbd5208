"""Measured FLOPs of the compiled functions a run calls, loops included.

XLA's cost analysis counts the body of a `lax.scan` / while loop once, not once per
iteration. `unrolled(fn)` traces `fn` and marks every scan in its jaxpr (nested ones
too: inside `shard_map`, `jit`, `cond`, custom derivatives) as fully unrolled, so
the analysed program contains every iteration; a `fori_loop` with static bounds is
a scan and is unrolled as well. A data-dependent `while_loop` cannot be unrolled:
its body stays counted once (`amr.compute.costs.kmeans_cost` adds the missing
iterations).

A chunk of S steps costs `outside + S * body` (what it runs is affine in S: the train
scan, the bandit's scan over S x R rewards, the S x R draws). `measure_chunk` analyses the
chunk function built for S = 1 and S = 2 (unrolled) and extrapolates. Analysing larger S
unrolled is slower to compile and not exactly affine (on the tiny config each further
unrolled step reads ~0.4% more than the last: XLA optimises the long unrolled program
differently), whereas the program that runs repeats one rolled body;
`measure_chunk(..., check=(fn, args))` also records the real compiled chunk's own
(rolled) number, so callers can check that `outside + body` matches it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
from jax._src import core as _core  # Jaxpr / ClosedJaxpr rewriting (no public equivalent in jax 0.10)

from amr.compute import ledger as budget


def _rewrite(jaxpr):
    eqns = []
    for eqn in jaxpr.eqns:
        params = {k: _rewrite_param(v) for k, v in eqn.params.items()}
        if eqn.primitive.name == "scan":
            params["unroll"] = max(1, int(params["length"]))
        eqns.append(eqn.replace(params=params))
    return jaxpr.replace(eqns=eqns)


def _rewrite_param(value):
    if isinstance(value, _core.ClosedJaxpr):
        return _core.ClosedJaxpr(_rewrite(value.jaxpr), value.consts)
    if isinstance(value, _core.Jaxpr):
        return _rewrite(value)
    if isinstance(value, tuple) and any(isinstance(v, (_core.Jaxpr, _core.ClosedJaxpr)) for v in value):
        return tuple(_rewrite_param(v) for v in value)
    return value


def unrolled(fn: Callable) -> Callable:
    """`fn` with every scan in its trace fully unrolled (same values; for cost analysis)."""

    def run(*args):
        return _run_unrolled(*jax.make_jaxpr(fn, return_shape=True)(*args), args)

    return run


def _run_unrolled(closed, shapes, args):
    out = _core.eval_jaxpr(_rewrite(closed.jaxpr), closed.consts, *jax.tree.leaves(args))
    return jax.tree.unflatten(jax.tree.structure(shapes), out)


def abstract(tree):
    """ShapeDtypeStructs of a pytree of arrays (or of ShapeDtypeStructs)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def loop_flops(fn: Callable, *args: Any) -> float:
    """FLOPs of one call of `fn` with every scan iteration counted (args may be abstract).

    Remembered per process by `fn`'s traced program (`ledger.program_key`): the same chunk built
    again for another seed is traced once and not unrolled, lowered or compiled again."""
    closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
    return budget.remembered(
        budget.program_key(closed, tag="unrolled"),
        lambda: budget.compiled_flops(lambda *a: _run_unrolled(closed, shapes, a), *args),
    )


@dataclasses.dataclass(frozen=True)
class ChunkCost:
    """A compiled chunk's measured FLOPs: `outside + steps * body`, split into ledger categories.

    `train_step` is one plain optimizer step on `new_rows + replay_rows` rows (measured on its own);
    its share of each step is training, split by rows; everything else the chunk computes
    (presample, probes, MIR's virtual step and candidate passes, observe, post-update passes,
    the step's bookkeeping) is selection."""

    outside: float
    body: float
    steps: int
    train_step: float
    new_rows: int
    replay_rows: int
    probe_rows: int = 0
    rolled: float = float("nan")  # the real compiled chunk's own number (loops counted once), if checked

    @property
    def total(self) -> float:
        return self.outside + self.steps * self.body

    @property
    def train(self) -> float:
        return self.steps * self.train_step

    @property
    def selection(self) -> float:
        return self.total - self.train

    def categories(self) -> dict[str, float]:
        rows = self.new_rows + self.replay_rows
        return {
            "train_new": self.train * self.new_rows / rows,
            "train_replay": self.train * self.replay_rows / rows,
            "selection": self.selection,
        }

    def charge(self, ledger: budget.Ledger) -> None:
        """One chunk's FLOPs and sample passes to `ledger`'s current task."""
        flops = self.categories()
        ledger.charge("train_new", flops["train_new"], samples=self.new_rows * self.steps)
        ledger.charge("train_replay", flops["train_replay"], samples=self.replay_rows * self.steps)
        ledger.charge("selection", flops["selection"], samples=self.probe_rows)

    def rolled_gap(self) -> float:
        """|outside + body - rolled| / rolled: how far the one-iteration reading is from the real chunk's."""
        return abs(self.outside + self.body - self.rolled) / self.rolled


def measure_chunk(
    build: Callable[[int], tuple[Callable, tuple]],
    steps: int,
    train_step: float,
    new_rows: int,
    replay_rows: int,
    probe_rows: int = 0,
    check: tuple[Callable, tuple] | None = None,
) -> ChunkCost:
    """`build(s)` -> (chunk function of s steps, its abstract args); analysed at s = 1 and 2, unrolled.

    `check`: (the real compiled chunk function, its abstract args), whose rolled analysis is kept."""
    one, two = (loop_flops(*_fn_args(build(s))) for s in (1, 2))
    rolled = budget.compiled_flops(*_fn_args(check)) if check is not None else float("nan")
    body = two - one
    return ChunkCost(one - body, body, steps, train_step, new_rows, replay_rows, probe_rows, rolled)


def _fn_args(pair):
    fn, args = pair
    return (fn, *args)
