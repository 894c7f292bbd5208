"""An amr chunk with companion methods on a tiny model, as the method tests build it."""

import jax
import numpy as np

from amr.methods import hooks
from amr.replay import policies as replay_lib
from amr.train import chunk as step_lib
from amr.train.state import make_optimizer
from tests.support.optim import optim_config
from tests.support.states import train_state

PAST = 32  # rows of the one past task (one arm); the new rows follow them in the memory


def amr_chunk(model, methods, mesh, steps: int, new: int, replay: int, capacity: int):
    """(chunk, state, memory rows): amr over one past task of PAST rows, `methods` in the step, the
    chunk-test optimizer; the state is unreplicated and its method states freshly initialised."""
    memory = np.random.default_rng(0).integers(0, 256, (capacity,) + tuple(model.example_shape)).astype(np.int32)
    policy = replay_lib.make_replay("amr", max_arms=4, capacity=capacity, reference="arm")
    tx = hooks.with_transforms(methods, make_optimizer(optim_config(), steps_per_task=8))
    params = model.init(jax.random.key(0))
    past = policy.add_task(policy.init(), np.arange(PAST), np.zeros(PAST, np.int32), 0, np.ones(1, np.float32), 1)
    state = train_state(params, tx, past, task=1, methods=hooks.init_states(methods, params))
    chunk = step_lib.make_chunk_fn(model, tx, policy, mesh, step_lib.ChunkSpec(steps, new, replay), methods=methods)
    return chunk, state, memory


def new_batches(mesh, memory, c: int, steps: int, new: int):
    """Chunk c's new rows and their ids (the rows after the past task, in order), sharded."""
    start = PAST + c * steps * new
    rows = memory[start : start + steps * new].reshape((steps, new) + memory.shape[1:])
    ids = (start + np.arange(steps * new, dtype=np.int32)).reshape(steps, new)
    return step_lib.shard_new_batches(mesh, rows), step_lib.shard_new_batches(mesh, ids)
