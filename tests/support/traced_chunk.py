"""A strategy's chunk whose traces are counted (the pattern of the transfer-guard tests)."""

import chex

from amr.train import chunk as step_lib


def counted_chunk(ctx, strategy):
    """(chunk, traces): `strategy`'s chunk as the run builds it, its policy's presample wrapped so that every
    trace of the per-device program appends to `traces` and a second trace fails (`chex.assert_max_traces`)."""
    plan, cfg, traces = strategy.plan, ctx.config, []

    def presample(*args, **kwargs):
        traces.append(1)
        return strategy.policy.presample(*args, **kwargs)

    policy = strategy.policy._replace(presample=chex.assert_max_traces(presample, n=1))
    spec = step_lib.ChunkSpec(cfg.train.chunk_size, plan.new_batch, plan.replay_batch, plan.probe_samples)
    return step_lib.make_chunk_fn(ctx.model, strategy.tx, policy, ctx.mesh, spec), traces
