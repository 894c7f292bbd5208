"""Deterministic, leak-free splits shared by every source.

Held-out data is separated *before* examples are cut (whole documents for
text, whole image regions or files for images), so no test example overlaps a
train example; `drop_shared_rows` then removes the rare train rows that are
byte-identical to a test row (boilerplate licence text, blank image patches).
Every random choice comes from `domain_rng(seed, name)`: one independent stream
per (seed, domain), so adding or reordering domains never changes another
domain's arrays.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Sequence

import numpy as np

# A document reader: read(n) returns at most n bytes of the document (all of it for n < 0).
Reader = Callable[[int], bytes]


def domain_rng(seed: int, *names: str) -> np.random.Generator:
    """An independent, reproducible generator for (seed, *names)."""
    return np.random.default_rng([seed, zlib.crc32("/".join(names).encode())])


def shuffle_cap(x: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """A seeded shuffle of the rows of `x`, keeping the first `cap` (0 = all)."""
    perm = rng.permutation(len(x))
    return x[perm[:cap] if cap else perm]


def unshared_rows(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """bool[len(train)]: the rows of `train` that equal no row of `test`."""
    if len(train) == 0 or len(test) == 0:
        return np.ones((len(train),), bool)
    test_rows = {bytes(r) for r in np.ascontiguousarray(test).reshape(len(test), -1).view(np.uint8)}
    flat = np.ascontiguousarray(train).reshape(len(train), -1).view(np.uint8)
    return np.fromiter((bytes(r) not in test_rows for r in flat), dtype=bool, count=len(train))


def drop_shared_rows(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """`train` without the rows that are exactly equal to some row of `test`."""
    if len(train) == 0 or len(test) == 0:
        return train
    return train[unshared_rows(train, test)]


def byte_windows(data: bytes, seq_len: int) -> np.ndarray:
    """Non-overlapping windows of `seq_len` bytes as int32 tokens [N, seq_len] (tail dropped)."""
    n = len(data) // seq_len
    return np.frombuffer(data, dtype=np.uint8, count=n * seq_len).reshape(n, seq_len).astype(np.int32)


def _read_until(
    readers: Sequence[Reader], order: np.ndarray, budget: int | None, seen: set[bytes]
) -> tuple[bytes, int]:
    """Concatenates documents readers[order[0]], readers[order[1]], ... until `budget` bytes.

    The last document is truncated to the budget. Documents whose content was
    already read (same hash, e.g. the same licence shipped by two packages) are
    skipped. Returns the bytes and how many entries of `order` were consumed
    (a consumed document belongs to this part even if only partly read).
    """
    parts, total, used = [], 0, 0
    for i in order:
        if budget is not None and total >= budget:
            break
        used += 1
        data = readers[i](-1 if budget is None else budget - total)
        digest = hashlib.sha1(data).digest()
        if not data or digest in seen:
            continue
        seen.add(digest)
        parts.append(data)
        total += len(data)
    return b"".join(parts), used


def split_documents(
    name: str, readers: Sequence[Reader], seq_len: int, test_per_task: int, max_train: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train [N, seq_len], test [test_per_task, seq_len]) int32 byte windows held out by document.

    The documents (given in a deterministic order, e.g. sorted paths) are
    permuted with the domain's seeded generator; the first ones form the test
    part until it holds `test_per_task` windows, the next ones the train part
    until it holds `max_train` windows (all remaining documents when 0). Only
    those bytes are read. Windows are cut within each part, then shuffled.
    """
    rng = domain_rng(seed, "text", name)
    order = rng.permutation(len(readers))
    seen: set[bytes] = set()
    test_bytes, used = _read_until(readers, order, test_per_task * seq_len, seen)
    test = byte_windows(test_bytes, seq_len)
    if len(test) < test_per_task:
        raise ValueError(
            f"data.test_per_task: domain {name!r} holds only {len(test)} windows of "
            f"{seq_len} bytes, fewer than test_per_task={test_per_task}."
        )
    # A little slack so that dropping train rows equal to test rows still leaves max_train.
    train_budget = (max_train + max_train // 64 + 1) * seq_len if max_train else None
    train_bytes, _ = _read_until(readers, order[used:], train_budget, seen)
    train = shuffle_cap(byte_windows(train_bytes, seq_len), 0, rng)
    test = shuffle_cap(test, 0, rng)
    train = drop_shared_rows(train, test)
    return (train[:max_train] if max_train else train), test
