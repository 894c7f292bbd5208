"""Host-resident replay memory: finished tasks on disk as checksummed ArrayRecord shards.

`memory.placement = "device"` (default) keeps every task's train rows in one replicated
device array and the chunk gathers replay rows by id. `"host"` keeps only the index
(arm -> ids) on device; the rows live in files and reach the device a chunk at a time:

  * **Shards.** When a task ends its train rows are written to
    `<memory.dir>/task0003.array_record` (one record per row: the row's raw bytes,
    `group_size:1` so any record is read alone) plus a sidecar `task0003.json` manifest:
    record count, dtype, row shape, the file's size and sha256, and the sha256 of the
    rows themselves (`content_sha256`). The manifest is written last, atomically: it is the
    commit marker. Writing is idempotent: a shard whose manifest exists is verified and
    kept (a resumed run, or another strategy of the same experiment, never rewrites it);
    one written from different rows (the data config changed under the same workdir) is
    an error, not silently reused.
  * **Verification on load.** Before a task replays from shards 0..t-1 each is checked:
    manifest present and readable, shard present, size and sha256 as recorded
    (truncated or altered files), readable as ArrayRecord with the recorded record count,
    and that count equal to the index's (the task's row count). Every failure is a
    `ShardError` naming the file. A shard verified once in this process is not re-hashed
    unless its size or mtime changed.
  * **Loading.** `RowLoader` reads rows by global id (task offset + row) through
    `grain.MapDataset.source(...)` over grain's `ArrayRecordDataSource` with
    `memory.workers` reader threads and prefetch, decoding each record with the
    manifest's dtype and shape.
  * **Pipeline** (`HostReplay`, used by `amr.train.loop.Run`). The chunk no longer draws its
    own replay ids: `amr.train.replay_source.make_presample_fn` draws them with exactly the chunk's keys
    (`fold_in(rng, step)`, split 3), a background thread fetches them, loads their rows and
    `device_put`s a `LocalMemory` (rows sharded over the mesh), and the chunk indexes
    those rows by position. With `memory.staleness = s` the ids of chunk c+s are drawn
    from the state chunk c starts from and loaded while chunks c..c+s-1 train:
      - s = 0: ids are drawn from the state the chunk starts from -- a host round trip per
        chunk, and results equal device placement (see tests/test_host_memory.py);
      - s >= 1 (default 1): the device never waits for data in steady state, but the
        bandit acts on estimates s chunks old (probes and replay feedback of the last s
        chunks are not yet in the distribution the ids were drawn from). At a task start
        the first s+1 chunks are drawn from the task's starting state.
    Drawn-but-unused ids are part of the checkpoint (`pending_json`), so a resumed run
    replays exactly what the uninterrupted run would have.
  * **Device bytes per stored sample.** The replay index is built without its per-sample
    arm table (`track_arms=False`): arms come from the draw. What stays per sample is
    `sorted_ids` (int32) plus, for the per-sample loss_increase reference, `sample_ref`
    (f32): 8 bytes (4 with the arm reference). Device placement keeps 12.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
from typing import Any

import grain
import jax
import numpy as np
from jax.sharding import NamedSharding

from amr.train import chunk as step_lib

PLACEMENTS = ("device", "host")
_HASH_BLOCK = 1 << 20


class ShardError(ValueError):
    """A missing, unreadable, truncated, altered or mis-sized memory shard; the message names the file."""


def placement(config) -> str:
    return config.memory.placement if "memory" in config else "device"


def memory_dir(config, workdir: str) -> str:
    return config.memory.dir or os.path.join(workdir, "memory")


def shard_paths(directory: str, task_index: int) -> tuple[str, str]:
    """(shard, manifest) paths of task `task_index`."""
    base = os.path.join(directory, f"task{task_index:04d}")
    return base + ".array_record", base + ".json"


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_HASH_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def content_sha256(rows: np.ndarray) -> str:
    """sha256 of the rows' dtype, shape and bytes (what a shard must hold)."""
    rows = np.ascontiguousarray(rows)
    h = hashlib.sha256(f"{rows.dtype.str}{rows.shape}".encode())
    h.update(rows.tobytes())
    return h.hexdigest()


def _array_record():
    from array_record.python import array_record_module  # pylint: disable=import-outside-toplevel

    return array_record_module


def write_shard(directory: str, task_index: int, task_name: str, rows: np.ndarray) -> dict[str, Any]:
    """Writes task `task_index`'s rows as a shard + manifest, or verifies the existing one. Returns the manifest."""
    shard, manifest_path = shard_paths(directory, task_index)
    digest = content_sha256(rows)
    if os.path.exists(manifest_path):
        manifest = verify_shard(directory, task_index, expected_records=len(rows))
        if manifest["content_sha256"] != digest:
            raise ShardError(
                f"{shard}: holds different rows than task {task_name!r} has now (the data config "
                "changed under the same workdir?); use a new workdir or memory.dir"
            )
        return manifest
    os.makedirs(directory, exist_ok=True)
    rows = np.ascontiguousarray(rows)
    tmp = shard + ".tmp"
    writer = _array_record().ArrayRecordWriter(tmp, "group_size:1")
    for row in rows:
        writer.write(row.tobytes())
    writer.close()
    os.replace(tmp, shard)
    manifest = {
        "version": 1,
        "task": task_name,
        "task_index": task_index,
        "records": int(len(rows)),
        "dtype": rows.dtype.str,
        "shape": list(rows.shape[1:]),
        "file_bytes": os.path.getsize(shard),
        "sha256": _file_sha256(shard),
        "content_sha256": digest,
    }
    with open(manifest_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(manifest_path + ".tmp", manifest_path)  # the commit marker
    return manifest


_VERIFIED: dict[str, tuple[int, int, str]] = {}  # shard -> (mtime_ns, size, sha256) verified in this process


def verify_shard(directory: str, task_index: int, expected_records: int | None = None) -> dict[str, Any]:
    """Checks one shard against its manifest (and the index's record count); returns the manifest."""
    shard, manifest_path = shard_paths(directory, task_index)
    if not os.path.exists(manifest_path):
        what = "its manifest " + manifest_path if os.path.exists(shard) else "the shard"
        raise ShardError(
            f"{shard}: missing memory shard for task {task_index} ({what} does not exist); "
            "it is written when the task ends"
        )
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        records, size, sha = int(manifest["records"]), int(manifest["file_bytes"]), str(manifest["sha256"])
        np.dtype(manifest["dtype"]), tuple(manifest["shape"])  # pylint: disable=expression-not-assigned
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ShardError(f"{manifest_path}: unreadable shard manifest ({type(err).__name__}: {err})") from err
    if not os.path.isfile(shard):
        raise ShardError(f"{shard}: missing memory shard for task {task_index} (its manifest exists)")
    try:
        stat = os.stat(shard)
    except OSError as err:
        raise ShardError(f"{shard}: unreadable memory shard ({err})") from err
    if stat.st_size != size:
        raise ShardError(
            f"{shard}: truncated or altered memory shard: {stat.st_size} bytes, its manifest records {size}"
        )
    if _VERIFIED.get(shard) != (stat.st_mtime_ns, size, sha):
        try:
            actual = _file_sha256(shard)
        except OSError as err:
            raise ShardError(f"{shard}: unreadable memory shard ({err})") from err
        if actual != sha:
            raise ShardError(
                f"{shard}: altered memory shard: sha256 {actual[:16]}... does not match its manifest's {sha[:16]}..."
            )
        try:
            reader = _array_record().ArrayRecordReader(shard)
            count = reader.num_records()
            if count:
                reader.read([0, count - 1])
            reader.close()
        except Exception as err:  # pylint: disable=broad-except  # array_record raises RuntimeError/ValueError/...
            raise ShardError(
                f"{shard}: unreadable memory shard, not a valid ArrayRecord file ({type(err).__name__}: {err})"
            ) from err
        if count != records:
            raise ShardError(f"{shard}: holds {count} records but its manifest records {records}")
        _VERIFIED[shard] = (stat.st_mtime_ns, size, sha)
    if expected_records is not None and records != expected_records:
        raise ShardError(
            f"{shard}: holds {records} records but the memory index expects {expected_records} for task {task_index}"
        )
    return manifest


class RowSource:
    """Random access to rows by global id over the shards of tasks 0..n-1 (grain data source protocol)."""

    def __init__(self, directory: str, expected_records: list[int]):
        manifests = [verify_shard(directory, t, n) for t, n in enumerate(expected_records)]
        if not manifests:
            raise ValueError("RowSource: no finished task to read from")
        dtypes = {(m["dtype"], tuple(m["shape"])) for m in manifests}
        if len(dtypes) != 1:
            raise ShardError(f"{directory}: memory shards disagree on dtype/shape: {sorted(dtypes)}")
        dtype, self.shape = dtypes.pop()
        self.dtype = np.dtype(dtype)
        self.paths = [shard_paths(directory, t)[0] for t in range(len(manifests))]
        self._source = grain.sources.ArrayRecordDataSource(self.paths)
        self._len = sum(expected_records)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i) -> np.ndarray:
        return np.frombuffer(self._source[int(i)], self.dtype).reshape(self.shape)


class _ByIds:
    """The rows of a fixed id list, as a random-access source (position -> row)."""

    def __init__(self, source: RowSource, ids: np.ndarray):
        self.source, self.ids = source, ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, k) -> np.ndarray:
        return self.source[self.ids[k]]


class RowLoader:
    """Rows by id with a grain random-access pipeline (`workers` reader threads, prefetching)."""

    def __init__(self, source: RowSource, workers: int):
        self.source, self.workers = source, workers

    def read(self, ids: np.ndarray) -> np.ndarray:
        flat = np.clip(np.asarray(ids).reshape(-1), 0, len(self.source) - 1)  # -1 (empty arm) never trains
        out = np.empty((flat.size, *self.source.shape), self.source.dtype)
        if flat.size == 0:
            return out.reshape(*np.shape(ids), *self.source.shape)
        ds = grain.MapDataset.source(_ByIds(self.source, flat))
        if self.workers:
            it = ds.to_iter_dataset(grain.ReadOptions(num_threads=self.workers, prefetch_buffer_size=4 * self.workers))
        else:
            it = (ds[k] for k in range(len(ds)))
        for k, row in enumerate(it):
            out[k] = row
        return out.reshape(*np.shape(ids), *self.source.shape)


class HostReplay:
    """Run-loop plumbing of host placement: shards at task ends, a prefetching id -> rows pipeline per task."""

    def __init__(self, ctx, directory: str, staleness: int, workers: int):
        self.ctx, self.directory, self.presample_fn = ctx, directory, None
        self.staleness, self.workers = staleness, workers
        self.steps = ctx.config.train.chunk_size
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="host-replay")
        self.pending: dict[int, concurrent.futures.Future] = {}
        self.loader: RowLoader | None = None
        self.chunks = 0
        mesh = ctx.mesh
        self._shardings = step_lib.LocalMemory(*[NamedSharding(mesh, spec) for spec in step_lib.LOCAL_MEMORY_SPECS])

    def write_task(self, t: int) -> None:
        """A finished task's rows to its shard (idempotent; verified when it exists)."""
        task = self.ctx.tasks[t]
        write_shard(self.directory, t, task.name, task.train)

    def start_task(self, t: int, chunks_per_task: int, presample_fn, pending: dict[str, Any] | None = None) -> None:
        """Opens (and verifies) the shards of tasks 0..t-1; `presample_fn` draws this task's chunks' ids
        (`amr.train.replay_source.make_presample_fn`); `pending` re-queues a checkpoint's drawn ids."""
        self._drain()
        self.presample_fn = presample_fn
        self.loader = RowLoader(RowSource(self.directory, [len(x.train) for x in self.ctx.tasks[:t]]), self.workers)
        self.chunks = chunks_per_task
        for k, pre in (pending or {}).items():
            host = step_lib.Presampled(*[np.asarray(pre[f], np.int32) for f in step_lib.Presampled._fields])
            self.pending[int(k)] = self.pool.submit(self._load, host)

    def local_memory(self, c: int, state) -> step_lib.LocalMemory:
        """Chunk c's LocalMemory; first queues draws up to chunk c+staleness from `state` (chunk c's input)."""
        for k in range(c, min(c + self.staleness, self.chunks - 1) + 1):
            if k not in self.pending:
                drawn = self.presample_fn(state.replay, state.rng, state.step + (k - c) * self.steps)
                self.pending[k] = self.pool.submit(self._load, drawn)
        return self.pending.pop(c).result()[0]

    def pending_json(self) -> dict[str, Any]:
        """Ids drawn for chunks not yet run (JSON, for the checkpoint), so a resume replays the same rows."""
        return {
            str(k): {f: np.asarray(v).tolist() for f, v in fut.result()[1]._asdict().items()}
            for k, fut in sorted(self.pending.items())
        }

    def _load(self, drawn) -> tuple[step_lib.LocalMemory, step_lib.Presampled]:
        host = step_lib.Presampled(*jax.device_get(tuple(drawn)))
        rows, probe_rows = self.loader.read(host.ids), self.loader.read(host.probe_ids)
        local = step_lib.LocalMemory(host.ids, host.arms, rows, host.probe_ids, host.probe_arms, probe_rows)
        return jax.device_put(local, self._shardings), host

    def _drain(self) -> None:
        for fut in self.pending.values():
            fut.cancel()
        concurrent.futures.wait(list(self.pending.values()))
        self.pending.clear()

    def close(self) -> None:
        self._drain()
        self.pool.shutdown(wait=True)
