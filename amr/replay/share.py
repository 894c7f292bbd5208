"""How many of a step's rows are replay: the replay share, fixed or chosen between chunks.

A share rule is a record of pure functions over a small state (optax-style), carried in the
TrainState (`TrainState.share`) and so checkpointed with it:

    rule = make_share("controller", rows_min=0, rows_max=8, rows_target=4, steps_per_task=160, chunk_size=8)
    state = rule.init()
    r = rule.rows(state, step)                 # i32[] replay rows per step of the chunk starting at `step`
    state = rule.update(state, signals, step)  # after that chunk, from its free in-chunk signals

Every step still trains the same number of rows: a chunk with `rows_max` replay slots turns the
slots past `r` into new-task rows (`amr.train.flex_batch`), so FLOPs never depend on r.

    fixed       r = rows_target always (state None): today's behaviour.
    schedule    r follows the chunk's position in its task with mean rows_target (`schedule_table`):
                'front' a linear ramp from high to low, 'back' the reverse, 'tail' no replay until the
                task's last chunks, which replay rows_max (state None).
    controller  r follows measured forgetting against new-task progress (`ControllerState`, see
                `controller_update`), kept near rows_target in the long run by an integral term.
    plateau     an adaptive tail: the 'tail' schedule, whose stretch at rows_max starts as soon as the new
                rows' loss no longer falls significantly (`PlateauState`, see `plateau_update`). The mean
                share is at least rows_target and otherwise what the stream's learning curves give, so a
                run is compared with uniform at its realised share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np

SHARES = ("fixed", "schedule", "controller", "plateau")
PROFILES = ("front", "back", "tail")

DRIVE_EMA = 0.3  # controller: step size of the EMA of the normalised imbalance (forgetting vs progress)
PLATEAU_MIN_CHUNKS = 3  # plateau: chunks of a task whose new-row loss is seen before a plateau can be declared
_EPS = 1e-6


class ShareSignals(NamedTuple):
    """A chunk's free signals: both come from losses the chunk computes anyway."""

    forgetting: jax.Array  # f32[] mean over trained replay rows of (loss - the row's reference); NaN: none
    new_loss: jax.Array  # f32[] mean loss of the new rows trained; NaN: none


@flax.struct.dataclass
class ControllerState:
    replay_rows: jax.Array  # i32[] r of the next chunk
    forgetting: jax.Array  # f32[] the last chunk's forgetting signal (NaN: none yet in this task)
    new_loss: jax.Array  # f32[] the last chunk's new-row loss (NaN: none yet in this task)
    drive: jax.Array  # f32[] EMA of the imbalance in [-1, 1] (+: forgetting grows faster than new loss falls)
    debt: jax.Array  # f32[] sum over replaying chunks of (r - rows_target): the integral term


@flax.struct.dataclass
class PlateauState:
    sums: jax.Array  # f32[7] decayed (W, sum w^2, sum wx, sum wy, sum wxx, sum wxy, sum wyy) of (chunk, new loss)
    chunk: jax.Array  # f32[] chunks of this task so far (x of the next observation)
    seen: jax.Array  # i32[] chunks of this task with a finite new-row loss
    on: jax.Array  # bool[] the plateau was declared in this task: replay rows_max until it ends


class ShareRule(NamedTuple):
    name: str
    rows_min: int  # global replay rows per step, at least
    rows_max: int  # ... at most (the chunk's replay slots)
    rows_target: int  # round(replay.fraction * batch): the mean share
    init: Callable[[], Any]
    rows: Callable[[Any, jax.Array], jax.Array]  # (state, chunk's first global step) -> i32[] r
    update: Callable[[Any, ShareSignals, jax.Array], Any]  # (state, signals, next chunk's first step) -> state

    @property
    def adaptive(self) -> bool:
        return self.rows_max > self.rows_min


def schedule_table(rows_min: int, rows_max: int, rows_target: int, chunks: int, profile: str) -> np.ndarray:
    """int32[chunks]: r of each chunk of a task, with mean exactly rows_target and every r in the bounds.

    'front'/'back': the continuous ramp r(u) = target + a (1/2 - u) at chunk centres u = (c + 1/2) / chunks
    has mean `target`; its slope `a` is the steepest that stays in [rows_min, rows_max] ('back' reversed).
    'tail': rows_min until the last target-proportional stretch of the task, then rows_max (a step at
    u0 = 1 - (target - min) / (max - min)). Chunk c gets round(cum(c + 1)) - round(cum(c)) of the
    profile's integral `cum`, so the task's total is exactly chunks * target and every r lies between
    the integers around the profile, hence inside the bounds."""
    c = np.arange(chunks + 1, dtype=np.float64)
    if profile == "tail":
        span = rows_max - rows_min
        start = chunks * (1.0 - (rows_target - rows_min) / span) if span else float(chunks)
        cum = c * rows_min + span * np.clip(c - start, 0.0, None)
        return np.diff(np.round(cum)).astype(np.int32)
    a = 2.0 * min(rows_max - rows_target, rows_target - rows_min)
    cum = c * rows_target + a * c * (chunks - c) / (2.0 * chunks)
    table = np.diff(np.round(cum)).astype(np.int32)
    return table if profile == "front" else table[::-1].copy()


def _no_update(state, signals, next_step):
    return state


def fixed(rows: int) -> ShareRule:
    return ShareRule("fixed", rows, rows, rows, lambda: None, lambda s, step: jnp.int32(rows), _no_update)


def schedule(rows_min, rows_max, rows_target, steps_per_task, chunk_size, profile="front") -> ShareRule:
    table = schedule_table(rows_min, rows_max, rows_target, steps_per_task // chunk_size, profile)

    def rows(state, step):
        return jnp.asarray(table)[(step % steps_per_task) // chunk_size]

    return ShareRule("schedule", rows_min, rows_max, rows_target, lambda: None, rows, _no_update)


def controller_update(state, signals, next_step, *, rows_min, rows_max, rows_target, steps_per_task, chunk_size):
    """The controller's rule (docs/ARCHITECTURE.md, "Adaptive replay share").

    phi = growth of forgetting since the last chunk, pi = fall of the new-row loss since then;
    z = (phi - pi) / (|phi| + |pi|) in [-1, 1] (no update without both chunks' signals);
    drive = EMA(z); debt += r - target;
    r' = clip(round(target + span * drive - debt / chunks_per_task), min, max), span the larger
    distance from target to a bound. The debt term is integral feedback: a run above target on
    average accumulates debt that pulls r down (and below, up), so the mean share tends to
    replay.fraction. A new task forgets the last chunk's signals (its losses are another task's)."""
    phi = signals.forgetting - state.forgetting
    pi = state.new_loss - signals.new_loss
    z = (phi - pi) / (jnp.abs(phi) + jnp.abs(pi) + _EPS)
    drive = jnp.where(jnp.isfinite(z), (1 - DRIVE_EMA) * state.drive + DRIVE_EMA * z, state.drive)
    debt = state.debt + (state.replay_rows - rows_target).astype(jnp.float32)
    span = float(max(rows_max - rows_target, rows_target - rows_min))
    want = rows_target + span * drive - debt / (steps_per_task // chunk_size)
    r = jnp.clip(jnp.round(want), rows_min, rows_max).astype(jnp.int32)
    task_start = (next_step % steps_per_task) == 0
    nan = jnp.float32(jnp.nan)
    return ControllerState(
        replay_rows=r,
        forgetting=jnp.where(task_start, nan, signals.forgetting).astype(jnp.float32),
        new_loss=jnp.where(task_start, nan, signals.new_loss).astype(jnp.float32),
        drive=drive.astype(jnp.float32),
        debt=debt,
    )


def controller(rows_min, rows_max, rows_target, steps_per_task, chunk_size) -> ShareRule:
    def init():
        nan = jnp.full((), jnp.nan, jnp.float32)
        zero = jnp.zeros((), jnp.float32)
        return ControllerState(jnp.asarray(rows_target, jnp.int32), nan, nan, zero, zero)

    def update(state, signals, next_step):
        return controller_update(
            state,
            signals,
            next_step,
            rows_min=rows_min,
            rows_max=rows_max,
            rows_target=rows_target,
            steps_per_task=steps_per_task,
            chunk_size=chunk_size,
        )

    return ShareRule("controller", rows_min, rows_max, rows_target, init, lambda s, step: s.replay_rows, update)


def weighted_slope(sums: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(slope, its standard error) of the weighted least-squares line through the points of `sums`.

    sums = (W, sum w^2, sum wx, sum wy, sum wxx, sum wxy, sum wyy). The residual variance is the weighted
    residual sum over W (1 - 2 / n_eff), n_eff = W^2 / sum w^2 the effective number of points (the usual
    RSS / (n - 2) for equal weights), and the slope's variance that over the weighted spread of x: exact
    for equal weights, an approximation under decay. NaN slope and error with fewer than 3 effective points."""
    W, W2, sx, sy, sxx, sxy, syy = (sums[i] for i in range(7))
    n_eff = W * W / jnp.maximum(W2, _EPS)
    xbar, ybar = sx / W, sy / W
    Sxx, Sxy, Syy = sxx - W * xbar * xbar, sxy - W * xbar * ybar, syy - W * ybar * ybar
    slope = Sxy / Sxx
    rss = jnp.maximum(Syy - slope * Sxy, 0.0)
    var = rss / (W * (1.0 - 2.0 / n_eff))
    se = jnp.sqrt(var / Sxx)
    ok = (n_eff > 2.0 + _EPS) & (Sxx > _EPS)
    nan = jnp.float32(jnp.nan)
    return jnp.where(ok, slope, nan), jnp.where(ok, se, nan)


def plateau_update(state, signals, next_step, *, steps_per_task, decay, z):
    """The plateau rule's state after a chunk (docs/ARCHITECTURE.md, "Adaptive replay share").

    Each chunk adds (its index in the task, its new rows' mean loss) to exponentially decayed sums (weight
    `decay` per chunk, so the fit follows the recent curve: about 1 / (1 - decay) chunks). After
    PLATEAU_MIN_CHUNKS finite losses, the new task is on a plateau when the fitted slope is not
    significantly negative: slope >= -z * se (an exactly flat curve is a plateau). The first plateau latches
    until the task's end (the decision is taken once, not re-drawn from noise every chunk); a new task starts with empty sums. A chunk without a
    finite new loss leaves the sums as they are."""
    y = signals.new_loss
    ok = jnp.isfinite(y)
    x = state.chunk
    point = jnp.stack([jnp.float32(1.0), jnp.float32(1.0), x, y, x * x, x * y, y * y])
    decays = jnp.asarray([decay, decay * decay, decay, decay, decay, decay, decay], jnp.float32)
    sums = jnp.where(ok, state.sums * decays + point, state.sums)
    seen = state.seen + ok.astype(jnp.int32)
    slope, se = weighted_slope(sums)
    flat = (seen >= PLATEAU_MIN_CHUNKS) & jnp.isfinite(slope) & (slope >= -z * se)
    after = PlateauState(sums=sums, chunk=x + 1.0, seen=seen, on=state.on | flat)
    task_start = (next_step % steps_per_task) == 0
    return jax.tree.map(lambda fresh, new: jnp.where(task_start, fresh, new), _plateau_init(), after)


def _plateau_init():
    return PlateauState(
        sums=jnp.zeros((7,), jnp.float32),
        chunk=jnp.zeros((), jnp.float32),
        seen=jnp.zeros((), jnp.int32),
        on=jnp.zeros((), bool),
    )


def plateau(rows_min, rows_max, rows_target, steps_per_task, chunk_size, decay=0.8, z=1.0) -> ShareRule:
    """The 'tail' schedule at rows_target, whose stretch at rows_max starts early in a task whose new rows'
    loss has stopped falling (`plateau_update`): r = rows_max from the plateau on, else the tail's r. So the
    mean share is at least rows_target (exactly it when no task plateaus) and the extra replay rows are
    spent only where new rows no longer teach the model measurably."""
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"share: plateau decay must lie in (0, 1], got {decay!r}")
    if not z >= 0.0:
        raise ValueError(f"share: plateau z must be >= 0, got {z!r}")
    tail = schedule(rows_min, rows_max, rows_target, steps_per_task, chunk_size, "tail")

    def rows(state, step):
        return jnp.where(state.on, jnp.int32(rows_max), tail.rows(None, step)).astype(jnp.int32)

    def update(state, signals, next_step):
        return plateau_update(state, signals, next_step, steps_per_task=steps_per_task, decay=decay, z=z)

    return ShareRule("plateau", rows_min, rows_max, rows_target, _plateau_init, rows, update)


def make_share(
    name: str,
    *,
    rows_min: int,
    rows_max: int,
    rows_target: int,
    steps_per_task: int,
    chunk_size: int,
    profile="front",
    plateau_decay=0.8,
    plateau_z=1.0,
) -> ShareRule:
    """The rule `name` (one of SHARES) over global replay rows per step in [rows_min, rows_max]."""
    if name not in SHARES:
        raise ValueError(f"share: unknown replay share {name!r}; expected one of {SHARES}")
    if not rows_min <= rows_target <= rows_max:
        raise ValueError(f"share: need rows_min <= rows_target <= rows_max, got {rows_min}, {rows_target}, {rows_max}")
    if name == "fixed":
        return fixed(rows_target)
    if name == "schedule":
        return schedule(rows_min, rows_max, rows_target, steps_per_task, chunk_size, profile)
    if name == "plateau":
        return plateau(rows_min, rows_max, rows_target, steps_per_task, chunk_size, plateau_decay, plateau_z)
    return controller(rows_min, rows_max, rows_target, steps_per_task, chunk_size)
