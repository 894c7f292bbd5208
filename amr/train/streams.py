"""A task's new rows as a checkpointable grain stream, and chunks of S batches drawn from it.

    stream = task_stream(ctx.tasks[t], int(ctx.offsets[t]), plan.new_batch, seed, t)
    new_SxB, ids_SxB = next_chunk(stream, config.train.chunk_size)

`stream.get_state()` / `stream.set_state(...)` save and restore the position (a run
checkpoints it mid-task). The order depends only on (seed, task index).
"""

from __future__ import annotations

import grain
import numpy as np


def task_stream(task, first_id: int, new_batch: int, seed: int, task_index: int):
    """grain iterator over one task's new rows and their memory ids: shuffle, repeat, batch.

    Yields (rows[new_batch, ...], ids int32[new_batch]) forever; ids are `first_id + row index`
    (the task's rows in the shared memory start at `first_id`). Its iterator state is
    checkpointable."""
    rows = task.train
    ds = (
        grain.MapDataset.range(len(rows))
        .shuffle(seed=seed * 100_003 + task_index)
        .repeat(None)
        .map(lambda i: (rows[i], np.int32(first_id + i)))
        .batch(new_batch, drop_remainder=True)
    )
    return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=8)))


def next_chunk(stream, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The next `steps` batches of `stream` stacked for one chunk: (new rows [S, B, ...], ids int32[S, B])."""
    batches = [next(stream) for _ in range(steps)]
    return np.stack([b[0] for b in batches]), np.stack([b[1] for b in batches])
