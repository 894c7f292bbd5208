"""Seeds as a vmapped axis of one chunk program: each seed computes what its own chunk computes."""

import chex
import jax
import numpy as np
import pytest

from amr.train import chunk as step_lib
from amr.train import mesh as mesh_lib
from tests.test_step import S, _ids, _lm, _setup


def _seed_states(state, seeds):
    """The same replay state under different parameters and chunk keys (as different run seeds give)."""
    model = _lm()
    return [state.replace(params=model.init(jax.random.key(s)), rng=jax.random.key(100 + s)) for s in seeds]


@pytest.mark.parametrize(
    "policy_name,devices,seed_groups",
    [
        pytest.param("uniform", 1, 0, marks=pytest.mark.slow),
        pytest.param("amr", 1, 0, marks=pytest.mark.slow),
        pytest.param("amr", 4, 0, marks=pytest.mark.slow),
        ("amr", 2, 3),  # the fast tier keeps the most general case: devices and seed groups both
    ],
)
def test_vmapped_seeds_equal_their_own_chunks(policy_name, devices, seed_groups):
    """`seed_groups`: the vmapped program's seeds split over that many groups of `devices` devices
    (`mesh_lib.make_seed_mesh`), each seed's own chunk data-parallel over `devices` as one group is."""
    chex.clear_trace_counter()
    model = _lm()
    policy, tx, state, memory = _setup(model, policy_name, reference="sample")
    mesh, spec = step_lib.make_mesh(devices), step_lib.ChunkSpec(S, 8, 4)
    seed_mesh = mesh_lib.make_seed_mesh(seed_groups, seed_groups * devices) if seed_groups else mesh
    states = [s.replace(opt_state=tx.init(s.params)) for s in _seed_states(state, (0, 1, 2))]
    rng = np.random.default_rng(1)
    news = [memory[rng.integers(48, 160, (S, 8))] for _ in states]
    mem = step_lib.replicate(mesh, memory)

    single = step_lib.make_chunk_fn(model, tx, policy, mesh, spec)
    traced_once = policy._replace(presample=chex.assert_max_traces(policy.presample, n=1))
    vmapped = step_lib.make_chunk_fn(model, tx, traced_once, seed_mesh, spec, seed_axis=True)
    own = [
        single(step_lib.replicate(mesh, s), step_lib.shard_new_batches(mesh, n), _ids(mesh, n, 48), mem)
        for s, n in zip(states, news)
    ]
    own = [single(s, step_lib.shard_new_batches(mesh, n), _ids(mesh, n, 48), mem) for (s, _), n in zip(own, news)]
    new_all = step_lib.shard_seed_batches(seed_mesh, np.stack(news))
    ids = step_lib.shard_seed_batches(seed_mesh, np.stack([np.asarray(_ids(mesh, n, 48)) for n in news]))
    seed_mem = step_lib.replicate(seed_mesh, memory)
    stacked, metrics = vmapped(mesh_lib.shard_seeds(seed_mesh, step_lib.stack_seeds(states)), new_all, ids, seed_mem)
    stacked, metrics = vmapped(stacked, new_all, ids, seed_mem)  # a second chunk: no retrace
    if seed_groups:  # each group of devices holds its own seed's parameters (not a replicated copy of all)
        leaf = jax.tree.leaves(stacked.params)[0]
        assert leaf.sharding.spec[0] == mesh_lib.SEEDS_AXIS
        chex.assert_shape(leaf.addressable_shards[0].data, (1, *leaf.shape[1:]))

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


def test_seed_mesh_layout_and_bad_groups():
    mesh = mesh_lib.make_seed_mesh(4, 8)
    assert dict(mesh.shape) == {mesh_lib.SEEDS_AXIS: 4, mesh_lib.AXIS: 2}
    with pytest.raises(ValueError, match="seed_groups=3 does not divide the 8 devices"):
        mesh_lib.make_seed_mesh(3, 8)
    with pytest.raises(ValueError, match="num_devices=16"):
        mesh_lib.make_seed_mesh(2, 16)
