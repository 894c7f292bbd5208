"""The layout of a batch whose replay share varies between chunks at a fixed number of rows.

A step trains `new_batch + replay_batch` rows. Its replay slots are numbered by a global
"canonical" column q in [0, replay_batch): the first `rows_min` are always replay, the last
`flex` (= rows_max - rows_min) are flex slots, and slot q holds a replay row iff q < r, the
chunk's replay count; a flex slot past r holds a new row instead (the flex new rows come as a
second new-row array, [S, flex]). Rows are chosen with `jnp.where`, so the program and its
FLOPs do not depend on r.

Each device holds its share of both kinds of slot: device d's slots are the canonical columns
d*Rml .. (fixed) then rows_min + d*Fl .. (flex), where Rml, Fl are the per-device counts. Row
keys and the order observations reach the bandit are canonical, so 1 and n devices train and
observe the same rows in the same order.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def device_cols(rows_min: int, flex: int, n_dev: int) -> np.ndarray:
    """int32[n_dev, (rows_min + flex) / n_dev]: each device's canonical replay columns, fixed then flex."""
    rml, fl = rows_min // n_dev, flex // n_dev
    return np.stack(
        [np.concatenate([d * rml + np.arange(rml), rows_min + d * fl + np.arange(fl)]) for d in range(n_dev)]
    ).astype(np.int32)


def local_cols(rows_min: int, flex: int, n_dev: int, dev):
    """This device's canonical replay columns (`dev` may be traced)."""
    return jnp.asarray(device_cols(rows_min, flex, n_dev))[dev]


def to_canonical(rows_min: int, flex: int, n_dev: int) -> np.ndarray:
    """Positions p such that `all_gathered[..., p]` (device blocks in device order) is in canonical order."""
    return np.argsort(device_cols(rows_min, flex, n_dev).reshape(-1)).astype(np.int32)


def split_new(new_SxW, new_batch: int, flex: int):
    """The stream's [S, new_batch + flex, ...] new rows as the chunk takes them: (always, flex) or as is."""
    if not flex:
        return new_SxW
    return new_SxW[:, :new_batch], new_SxW[:, new_batch:]
