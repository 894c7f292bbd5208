"""Free embeddings for k-means arms (`replay.embeddings = "free"`): kept from the training pass.

Every new row already goes through the model once while it is trained on. With "free" the
chunk's forward (`amr.methods.hooks.step_objective(..., embed=True)`) is `model.loss_and_embed`,
whose second output is the pooled representation of that same forward pass (the loss value does
not change); when a companion method needs the step's outputs the forward is `model.outputs`,
the same pass, whose `embedding` is that pooling. Each step writes its new rows'
embeddings (all-gathered over the "data" axis, so every device holds the same buffer) into
`EmbeddingBuffer`: f32[task_rows, D] indexed by the row's position in the current task, the
last visit winning. The buffer rides in `TrainState.embeddings`, so it is checkpointed with the
rest of the state. At the task end k-means runs on it; only rows never trained on (or only on
skipped steps) get the paid `train_embed` pass (`amr.train.heldout.train_embed_pass`).

The default "paid" keeps today's path: no buffer (`TrainState.embeddings is None`), the chunk
uses `model.loss`, and the task end embeds every row with `model.embed`.
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np

from amr.replay import clustering

MODES = ("paid", "free")
KEY = "replay.embeddings"


@flax.struct.dataclass
class EmbeddingBuffer:
    emb: jax.Array  # f32[task_rows, D] pooled embedding of each row of the current task at its last visit
    seen: jax.Array  # bool[task_rows] whether the row has one (trained on in a step that was applied)
    first_id: jax.Array  # i32[] memory id of the current task's row 0


def mode(cfg) -> str:
    """`replay.embeddings` of `cfg` ("paid" when the config predates the key)."""
    return cfg.replay.get("embeddings", "paid")


def uses_buffer(cfg, strategy: str) -> bool:
    """Whether a run of `strategy` carries a buffer: free embeddings and k-means arms (AMR, k > 1)."""
    kmeans = clustering.arm_labels(cfg) == "kmeans"
    return mode(cfg) == "free" and strategy == "amr" and cfg.replay.clusters_per_task > 1 and kmeans


def empty(rows: int, dim: int, first_id: int = 0) -> EmbeddingBuffer:
    """A buffer with no row seen, on the host."""
    return EmbeddingBuffer(
        emb=np.zeros((rows, dim), np.float32), seen=np.zeros((rows,), bool), first_id=np.int32(first_id)
    )


def per_example_train_embeddings(model, params, rows, keys):
    """f32[B, D]: the training forward's embeddings (`model.train_embed`, without the loss's head / decoder)."""
    return jax.vmap(lambda x, k: model.train_embed(params, x[None], k)[0])(rows, keys)


def record(buf: EmbeddingBuffer, ids_B, emb_BxD, ok) -> EmbeddingBuffer:
    """`buf` with rows `ids_B` (global memory ids, replicated) set to `emb_BxD` when the step was applied (`ok`).

    Within the batch the last occurrence of an id wins (a task smaller than a batch repeats rows);
    ids outside the current task and non-finite embeddings are dropped (those rows stay unseen)."""
    rows, B = buf.seen.shape[0], ids_B.shape[0]
    pos_B = ids_B - buf.first_id
    order = jnp.arange(B)
    repeated_later = jnp.any((ids_B[:, None] == ids_B[None, :]) & (order[None, :] > order[:, None]), axis=1)
    keep = ok & ~repeated_later & (pos_B >= 0) & (pos_B < rows) & jnp.all(jnp.isfinite(emb_BxD), axis=1)
    pos_B = jnp.where(keep, pos_B, rows)  # out of range: dropped
    return buf.replace(
        emb=jnp.asarray(buf.emb).at[pos_B].set(emb_BxD.astype(buf.emb.dtype), mode="drop"),
        seen=jnp.asarray(buf.seen).at[pos_B].set(True, mode="drop"),
    )


def unvisited_rows(task_rows: int, steps: int, new_rows: int) -> int:
    """Rows of a task a stream of `steps` batches of `new_rows` never reaches (it walks whole shuffled epochs)."""
    return max(0, task_rows - steps * new_rows)
