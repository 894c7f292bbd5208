"""Seeds as a vmapped axis of one chunk program: each seed computes what its own chunk computes."""

import chex
import jax
import numpy as np
import pytest

from amr.train import chunk as step_lib
from tests.test_step import S, _ids, _lm, _setup


def _seed_states(state, seeds):
    """The same replay state under different parameters and chunk keys (as different run seeds give)."""
    model = _lm()
    return [state.replace(params=model.init(jax.random.key(s)), rng=jax.random.key(100 + s)) for s in seeds]


@pytest.mark.parametrize("policy_name,devices", [("uniform", 1), ("amr", 1), ("amr", 4)])
def test_vmapped_seeds_equal_their_own_chunks(policy_name, devices):
    chex.clear_trace_counter()
    model = _lm()
    policy, tx, state, memory = _setup(model, policy_name, reference="sample")
    mesh, spec = step_lib.make_mesh(devices), step_lib.ChunkSpec(S, 8, 4)
    states = [s.replace(opt_state=tx.init(s.params)) for s in _seed_states(state, (0, 1, 2))]
    rng = np.random.default_rng(1)
    news = [memory[rng.integers(48, 160, (S, 8))] for _ in states]
    mem = step_lib.replicate(mesh, memory)

    single = step_lib.make_chunk_fn(model, tx, policy, mesh, spec)
    traced_once = policy._replace(presample=chex.assert_max_traces(policy.presample, n=1))
    vmapped = step_lib.make_chunk_fn(model, tx, traced_once, mesh, spec, seed_axis=True)
    own = [
        single(step_lib.replicate(mesh, s), step_lib.shard_new_batches(mesh, n), _ids(mesh, n, 48), mem)
        for s, n in zip(states, news)
    ]
    own = [single(s, step_lib.shard_new_batches(mesh, n), _ids(mesh, n, 48), mem) for (s, _), n in zip(own, news)]
    new_all = step_lib.shard_seed_batches(mesh, np.stack(news))
    ids = step_lib.shard_seed_batches(mesh, np.stack([np.asarray(_ids(mesh, n, 48)) for n in news]))
    stacked, metrics = vmapped(step_lib.replicate(mesh, step_lib.stack_seeds(states)), new_all, ids, mem)
    stacked, metrics = vmapped(stacked, new_all, ids, mem)  # a second chunk: no retrace

    chex.assert_shape(metrics["loss"], (3, S))
    for i, (s, m) in enumerate(own):
        got = step_lib.unstack_seeds(stacked, 3)[i]
        # Adam turns reduction-order rounding of ~0 gradients (the key bias) into updates of up to lr: atol 1e-4
        chex.assert_trees_all_close(jax.device_get(got.params), jax.device_get(s.params), atol=1e-4, rtol=1e-4)
        chex.assert_trees_all_close(jax.device_get(got.replay), jax.device_get(s.replay), atol=1e-5, rtol=1e-5)
        chex.assert_trees_all_close(jax.device_get(metrics["loss"][i]), jax.device_get(m["loss"]), atol=1e-5)
    # the seeds really differ (negative control: a vmapped axis that broadcast one seed would pass the above
    # only if every seed were the same run)
    assert not np.allclose(np.asarray(metrics["loss"][0]), np.asarray(metrics["loss"][1]))


def test_stack_unstack_round_trip():
    trees = [{"a": np.full((2,), i, np.float32), "b": np.int32(i)} for i in range(4)]
    stacked = step_lib.stack_seeds(trees)
    chex.assert_shape(stacked["a"], (4, 2))
    chex.assert_trees_all_close(step_lib.unstack_seeds(stacked, 4), [jax.tree.map(np.asarray, t) for t in trees])
