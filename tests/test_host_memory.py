"""Host-resident memory: checksummed shards, bad shards named, host placement == device placement."""

import dataclasses
import functools
import json
import os
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amr.models import default_model_config, make_model
from amr.replay import policies as replay_lib
from amr.runner.experiment import prepare
from amr.train import chunk as step_lib
from amr.train import host_memory
from amr.train import loop as train_lib
from amr.train.state import TrainState, make_optimizer
from configs import tiny
from tests.support.optim import optim_config


def _rows(n, seed=0, width=16):
    return np.random.default_rng(seed).integers(0, 256, (n, width)).astype(np.int32)


# ---------------------------------------------------------------- shards


def test_shard_round_trip_with_checksums(tmp_path):
    d = str(tmp_path)
    tasks = [_rows(30, 0), _rows(20, 1)]
    for t, rows in enumerate(tasks):
        manifest = host_memory.write_shard(d, t, f"t{t}", rows)
        assert manifest["records"] == len(rows) and manifest["shape"] == [16] and len(manifest["sha256"]) == 64
    shard, _ = host_memory.shard_paths(d, 0)
    mtime = os.stat(shard).st_mtime_ns
    again = host_memory.write_shard(d, 0, "t0", tasks[0])  # idempotent: verified, not rewritten
    assert again == manifest or again["content_sha256"] == host_memory.content_sha256(tasks[0])
    assert os.stat(shard).st_mtime_ns == mtime
    loader = host_memory.RowLoader(host_memory.RowSource(d, [30, 20]), workers=2)
    ids = np.array([[0, 29, 30], [49, 5, 31]])
    np.testing.assert_array_equal(loader.read(ids), np.concatenate(tasks)[ids])
    np.testing.assert_array_equal(
        host_memory.RowLoader(loader.source, workers=0).read(ids[0]), np.concatenate(tasks)[ids[0]]
    )
    with pytest.raises(host_memory.ShardError, match=re.escape(shard)):
        host_memory.write_shard(d, 0, "t0", _rows(30, 7))  # same task, different rows


def _missing(shard, manifest):
    os.remove(shard)


def _unreadable(shard, manifest):  # not an ArrayRecord file, though its manifest matches it
    with open(shard, "wb") as f:
        f.write(b"not an array record file" * 10)
    with open(manifest) as f:
        m = json.load(f)
    m.update(file_bytes=os.path.getsize(shard), sha256=host_memory._file_sha256(shard))
    with open(manifest, "w") as f:
        json.dump(m, f)


def _truncated(shard, manifest):
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) - 7)


def _altered(shard, manifest):
    with open(shard, "r+b") as f:
        f.seek(40)
        byte = f.read(1)
        f.seek(40)
        f.write(bytes([byte[0] ^ 1]))


def _manifest_count(shard, manifest):  # the manifest claims another record count (size and sha intact)
    with open(manifest) as f:
        m = json.load(f)
    m["records"] += 1
    with open(manifest, "w") as f:
        json.dump(m, f)


@pytest.mark.parametrize(
    "damage,expected",
    [
        (_missing, "missing"),
        (_unreadable, "unreadable"),
        (_truncated, "truncated"),
        (_altered, "altered"),
        (_manifest_count, "records"),
        (None, "index expects 31"),
    ],
)
def test_bad_shard_names_the_file(tmp_path, damage, expected):
    d = str(tmp_path)
    host_memory.write_shard(d, 0, "t0", _rows(30))
    shard, manifest = host_memory.shard_paths(d, 0)
    if damage:
        damage(shard, manifest)
    with pytest.raises(host_memory.ShardError, match=re.escape(shard) + ".*" + expected):
        host_memory.RowSource(d, [30 if damage else 31])  # None: the index disagrees with the shard


# ---------------------------------------------------------------- one chunk, device vs host placement


def _chunk_setup(policy_name, on_host, **kw):
    cfg = default_model_config("byte_lm")
    cfg.width, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.seq_len = 32, 1, 2, 64, 16
    model = make_model(cfg)
    cap = 96
    memory = _rows(cap, 3)
    policy = replay_lib.make_replay(
        policy_name, max_arms=4, capacity=cap, reference="sample", track_arms=not on_host, **kw
    )
    optim = optim_config()
    tx = make_optimizer(optim, steps_per_task=12)
    params = model.init(jax.random.key(0))
    replay = policy.init()
    for t in range(2):
        replay = policy.add_task(replay, t * 32 + np.arange(32), np.arange(32) % 2, t, num_clusters=2)
    state = TrainState(
        params=params,
        opt_state=tx.init(params),
        replay=replay,
        rng=jax.random.key(3),
        step=jnp.zeros((), jnp.int32),
        task=jnp.ones((), jnp.int32),
        skipped=jnp.zeros((), jnp.int32),
    )
    return model, tx, policy, state, memory


@pytest.mark.slow
@pytest.mark.parametrize("policy_name,probes,kw", [("mir", 0, {"candidates": 2})])
def test_host_chunk_equals_device_chunk(policy_name, probes, kw):
    mesh = step_lib.make_mesh(2)
    spec = step_lib.ChunkSpec(2, 4, 4, probes)
    new = step_lib.shard_new_batches(mesh, _rows(8, 9).reshape(2, 4, 16))
    new_ids = step_lib.shard_new_batches(mesh, (64 + np.arange(8, dtype=np.int32)).reshape(2, 4))
    outs = []
    for on_host in (False, True):
        model, tx, policy, state, memory = _chunk_setup(policy_name, on_host, **kw)
        state = step_lib.replicate(mesh, state)
        chunk = step_lib.make_chunk_fn(model, tx, policy, mesh, spec, host_memory=on_host)
        if on_host:
            drawn = jax.device_get(step_lib.make_presample_fn(policy, spec)(state.replay, state.rng, state.step))
            local = step_lib.LocalMemory(
                drawn.ids, drawn.arms, memory[drawn.ids], drawn.probe_ids, drawn.probe_arms, memory[drawn.probe_ids]
            )
            arg = jax.device_put(
                local, step_lib.LocalMemory(*[jax.sharding.NamedSharding(mesh, s) for s in step_lib.LOCAL_MEMORY_SPECS])
            )
        else:
            arg = step_lib.replicate(mesh, memory)
        outs.append(jax.device_get(chunk(state, new, new_ids, arg)))
    (dev_state, dev_metrics), (host_state, host_metrics) = outs
    chex.assert_trees_all_equal(dev_metrics, host_metrics)
    chex.assert_trees_all_equal(dev_state.params, host_state.params)
    chex.assert_trees_all_equal(dev_state.replay.bandit, host_state.replay.bandit)
    chex.assert_trees_all_equal(dev_state.replay.sample_ref, host_state.replay.sample_ref)


def test_host_index_stores_8_bytes_per_sample():
    policy = replay_lib.make_replay("amr", max_arms=4, capacity=1000, reference="sample", track_arms=False)
    per_sample = [x for x in jax.tree.leaves(policy.init()) if x.ndim and x.shape[0] == 1000]
    assert sum(x.dtype.itemsize for x in per_sample) == 8
    state = policy.add_task(policy.init(), np.arange(10), np.zeros(10, int), 0)
    with pytest.raises(ValueError, match="arm table"):
        replay_lib.memory_lib.arms_of(state.memory, jnp.arange(3))


# ---------------------------------------------------------------- whole runs on the tiny config


@functools.cache
def _compiled(placement):
    """(context, amr strategy) of one placement; runs share them, as seeds do (staleness is read per run)."""
    cfg = tiny.get_config()
    cfg.mesh.num_devices = 2
    cfg.data.domains = ("docs", "headers")  # 2 tasks x 2 chunks, a checkpoint after every chunk: small but complete
    cfg.train.steps_per_task, cfg.train.eval_every, cfg.train.checkpoint_every = 8, 0, 1
    cfg.replay.probe_samples = 2  # probe rows come from the loader too (paid by trimming new rows)
    cfg.memory.placement = placement
    if placement == "device":
        ctx = prepare(cfg)
    else:  # the device context's tasks and compiled held-out passes, without the device-resident rows
        device_ctx = _compiled("device")[0]
        ctx = dataclasses.replace(
            device_ctx, config=cfg, memory=step_lib.replicate(device_ctx.mesh, np.zeros((1,), np.int32))
        )
    return ctx, train_lib.make_strategy(ctx, "amr")


def _run(placement, workdir, staleness=0):
    ctx, strategy = _compiled(placement)
    ctx.config.memory.staleness = staleness
    run = train_lib.Run(ctx, strategy, 0, os.path.join(workdir, "ckpt"), memory_dir=os.path.join(workdir, "memory"))
    return run.run(progress=False)


@pytest.mark.slow
def test_host_placement_staleness0_equals_device(tmp_path):
    device = _run("device", str(tmp_path / "d"))
    host = _run("host", str(tmp_path / "h"))
    # Exact: same ids (same keys), same rows, same per-device programs up to where the rows come from.
    np.testing.assert_array_equal(host["loss_matrix"], device["loss_matrix"])
    assert host["plan"]["probe_samples"] == 2
    # Measured FLOPs: the same training and eval; selection differs only by where rows come from
    # (the device chunk gathers them by id, the host one takes them in order; its draws run in presample).
    assert all(host["flops"][k] == device["flops"][k] for k in ("train_new", "train_replay", "eval"))
    np.testing.assert_allclose(host["flops"]["selection"], device["flops"]["selection"], rtol=1e-3)
    assert sorted(os.listdir(tmp_path / "h" / "memory")) == ["task0000.array_record", "task0000.json"]


@pytest.mark.slow
def test_host_staleness1_finishes_and_resumes_exactly(tmp_path, monkeypatch):
    reference = _run("host", str(tmp_path / "a"), staleness=1)
    assert reference["within_budget"] and np.all(np.isfinite(reference["loss_matrix"]))
    calls = {"n": 0}
    original = train_lib.Run._record

    def crashing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # task 1 (replaying), chunk 1: after the checkpoint that holds chunk 1's drawn ids
            raise KeyboardInterrupt("injected crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(train_lib.Run, "_record", crashing)
    with pytest.raises(KeyboardInterrupt):
        _run("host", str(tmp_path / "b"), staleness=1)
    monkeypatch.setattr(train_lib.Run, "_record", original)
    resumed = _run("host", str(tmp_path / "b"), staleness=1)
    np.testing.assert_array_equal(resumed["loss_matrix"], reference["loss_matrix"])
    assert resumed["flops"] == reference["flops"]
