"""Transfer discipline of the chunk function: no host->device copies once inputs are on device,
and one trace across chunks and across a task's arms being added (shapes are static).

`jax.transfer_guard('disallow')` catches host->device transfers on CPU (not device->host
reads, which are zero-copy there); the negative check proves the guard is live.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amr.replay import clustering
from amr.runner.experiment import prepare
from amr.train import chunk as step_lib
from amr.train.state import TrainState
from amr.train.strategy import make_strategy
from amr.train.streams import next_chunk, task_stream
from configs import tiny


@pytest.fixture(scope="module")
def setup():
    cfg = tiny.get_config()
    cfg.mesh.num_devices = 2
    cfg.strategies = ("amr",)
    cfg.baseline = ""
    ctx = prepare(cfg)
    strategy = make_strategy(ctx, "amr")
    plan = strategy.plan
    # Count traces of the per-device program through the policy's presample (called once per trace).
    traces = []

    def presample(*args, **kwargs):
        traces.append(1)
        return strategy.policy.presample(*args, **kwargs)

    policy = strategy.policy._replace(presample=chex.assert_max_traces(presample, n=1))
    chunk = step_lib.make_chunk_fn(
        ctx.model,
        strategy.tx,
        policy,
        ctx.mesh,
        step_lib.ChunkSpec(cfg.train.chunk_size, plan.new_batch, plan.replay_batch, plan.probe_samples),
    )
    return ctx, strategy, plan, chunk, traces


def _add_arms(ctx, policy, replay, t):
    n = len(ctx.tasks[t].train)
    return policy.add_task(
        replay, ctx.offsets[t] + np.arange(n), clustering.per_task_labels(n), t, None, num_clusters=1
    )


def _host_chunks(ctx, plan, count):
    stream = task_stream(ctx.tasks[-1], int(ctx.offsets[-1]), plan.new_batch, 0, len(ctx.tasks) - 1)
    return [next_chunk(stream, ctx.config.train.chunk_size) for _ in range(count)]


def test_chunk_makes_no_host_transfers_and_traces_once(setup):
    ctx, strategy, plan, chunk, traces = setup
    params = ctx.model.init(jax.random.key(0))
    state = TrainState(
        params=params,
        opt_state=strategy.tx.init(params),
        replay=_add_arms(ctx, strategy.policy, strategy.policy.init(), 0),
        rng=jax.random.key(1),
        step=jnp.zeros((), jnp.int32),
        task=jnp.zeros((), jnp.int32),
        skipped=jnp.zeros((), jnp.int32),
    )
    state = step_lib.replicate(ctx.mesh, state)
    on_device = [tuple(step_lib.shard_new_batches(ctx.mesh, x) for x in c) for c in _host_chunks(ctx, plan, 4)]

    state, _ = chunk(state, *on_device[0], ctx.memory)  # compile (outside the guard: constants go to device)
    with jax.transfer_guard("disallow"):
        for new, ids in on_device[1:3]:
            state, metrics = chunk(state, new, ids, ctx.memory)
        jax.block_until_ready((state, metrics))

    # A task's data becomes arms on the host; the replicated state goes back with the same shapes.
    replay = _add_arms(ctx, strategy.policy, state.replay, 1)
    state = state.replace(replay=step_lib.replicate(ctx.mesh, replay))
    with jax.transfer_guard("disallow"):
        state, metrics = chunk(state, *on_device[3], ctx.memory)
        jax.block_until_ready((state, metrics))
    assert len(traces) == 1  # one trace for every call (chex raises on a second)
    counts = np.asarray(metrics["replay_arm_counts"])
    assert counts[:2].sum() == plan.replay_batch * ctx.config.train.chunk_size and counts[2:].sum() == 0
    assert np.all(np.isfinite(np.asarray(metrics["loss"])))

    # The guard is live on this backend: a numpy array passed to a jitted function (an implicit
    # host->device transfer, what a chunk fed host batches would do) is refused.
    new_np, _ = _host_chunks(ctx, plan, 1)[0]
    with jax.transfer_guard("disallow"), pytest.raises(Exception, match="[Dd]isallowed host-to-device transfer"):
        jax.jit(lambda x: x + 1)(new_np)


def test_a_second_trace_would_be_caught():
    """The trace counter used above can fail: a new shape retraces and chex complains."""
    fn = jax.jit(chex.assert_max_traces(lambda x: x * 2, n=1))
    fn(jnp.zeros((2,)))
    fn(jnp.ones((2,)))
    with pytest.raises(AssertionError, match="trace"):
        fn(jnp.zeros((3,)))
