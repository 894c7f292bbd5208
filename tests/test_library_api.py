"""The library API is the evaluated method: the example runs, its draws are the trainer's, misuse fails loudly."""

import importlib.util
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amr.models import default_model_config, make_model
from amr.replay import bandit as bandit_lib
from amr.replay import memory as memory_lib
from amr.replay import policies, registry
from amr.train import chunk as step_lib
from amr.train.state import TrainState

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example():
    spec = importlib.util.spec_from_file_location("own_loop", os.path.join(ROOT, "examples", "own_loop.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fed_back(replay) -> bool:
    """Whether the bandit observed rewards and per-sample references were recorded."""
    return int(replay.bandit.t) > 0 and bool(np.isfinite(np.asarray(replay.sample_ref)).any())


def test_example_runs_jitted_and_feeds_the_bandit():
    ex = _example()
    traces = []
    losses_fn = ex.per_example_losses
    ex.per_example_losses = lambda *a: traces.append(1) or losses_fn(*a)  # called once per trace of the chunk
    params, replay, losses = ex.main(num_tasks=2, chunks_per_task=3, verbose=False)
    assert len(losses) == 2 and np.all(np.isfinite(losses))
    assert _fed_back(replay)
    assert len(traces) == 2  # jitted: one trace without replay (first task), one with, for 6 chunks
    # negative control: a state that only had tasks added has neither
    fresh = ex.policies.amr(max_arms=2, capacity=8).init()
    assert not _fed_back(fresh)


def test_library_defaults_are_the_trainers():
    import configs.base

    cfg = configs.base.get_base_config()
    policy = policies.make_replay("amr", max_arms=4, capacity=16)
    assert cfg.replay.reference == "auto" and policy.init().sample_ref.shape == (16,)  # 'sample' reference
    assert policies.make_replay("mir", max_arms=4, capacity=16).candidates == cfg.replay.mir_candidates
    active = np.array([1, 1, 1, 0], bool)
    arms, rewards = jnp.array([0, 1, 2, 0, 1], jnp.int32), jnp.array([0.5, 2.0, 1.0, 0.7, 1.5])

    def probs(**kw):
        b = bandit_lib.make_bandit(4, **kw)
        return np.asarray(b.probs(b.observe(b.init(active), arms, rewards)))

    np.testing.assert_array_equal(probs(), probs(**cfg.bandit))
    assert not np.array_equal(probs(), probs(**{**cfg.bandit, "tau": 0.5}))  # negative control
    assert set(cfg.strategies) <= set(registry.STRATEGIES)


def _tiny_trainer_state(policy):
    cfg = default_model_config("byte_lm")
    cfg.width, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.seq_len = 16, 1, 2, 32, 8
    model = make_model(cfg)
    replay = policy.init()
    for t in range(2):
        replay = policy.add_task(replay, t * 20 + np.arange(20), np.arange(20) % 2, t, num_clusters=2)
    import optax

    tx = optax.sgd(1e-2)
    params = model.init(jax.random.key(0))
    state = TrainState(
        params=params,
        opt_state=tx.init(params),
        replay=replay,
        rng=jax.random.key(5),
        step=jnp.array(16, jnp.int32),
        task=jnp.ones((), jnp.int32),
        skipped=jnp.zeros((), jnp.int32),
    )
    memory = np.random.default_rng(0).integers(0, 256, (64,) + model.example_shape).astype(np.int32)
    return model, tx, state, memory


def test_library_draws_are_the_trainer_chunks():
    S, B, R = 2, 4, 2
    policy = policies.make_replay("amr", max_arms=4, capacity=64)
    model, tx, state, memory = _tiny_trainer_state(policy)
    seen = []

    def recording_presample(*args, **kwargs):
        ids = policy.presample(*args, **kwargs)
        jax.debug.callback(lambda x: seen.append(np.asarray(x)), ids)
        return ids

    mesh = step_lib.make_mesh(2)
    chunk = step_lib.make_chunk_fn(
        model, tx, policy._replace(presample=recording_presample), mesh, step_lib.ChunkSpec(S, B, R)
    )
    sample_key = jax.random.split(jax.random.fold_in(state.rng, state.step), 3)[0]  # the chunk's first key
    lib_ids, lib_arms = jax.jit(policy.presample_with_arms, static_argnums=(2, 3))(state.replay, sample_key, S, R)
    new = np.asarray(memory[40 : 40 + S * B]).reshape((S, B) + model.example_shape)
    new_ids = (40 + np.arange(S * B, dtype=np.int32)).reshape(S, B)
    chunk(
        step_lib.replicate(mesh, state),
        step_lib.shard_new_batches(mesh, new),
        step_lib.shard_new_batches(mesh, new_ids),
        step_lib.replicate(mesh, memory),
    )
    jax.effects_barrier()
    assert seen, "the chunk did not presample"
    chex.assert_trees_all_equal(seen[0], np.asarray(lib_ids))
    np.testing.assert_array_equal(np.asarray(memory_lib.arms_of(state.replay.memory, lib_ids)), np.asarray(lib_arms))
    # negative control: the next chunk's key draws other ids
    other_key = jax.random.split(jax.random.fold_in(state.rng, state.step + S), 3)[0]
    assert not np.array_equal(seen[0], np.asarray(policy.presample(state.replay, other_key, S, R)))


# ---------------------------------------------------------------- misuse fails loudly


@pytest.mark.parametrize("name", ["uniform", "task_balanced", "amr", "mir"])
def test_empty_memory_raises_outside_jit_and_gives_invalid_ids_inside(name):
    policy = policies.make_replay(name, max_arms=4, capacity=32)
    state = policy.init()
    with pytest.raises(ValueError, match="state: the replay memory is empty"):
        policy.presample(state, jax.random.key(0), 2, 3)
    with pytest.raises(ValueError, match="state: the replay memory is empty"):
        policy.presample_with_arms(state, jax.random.key(0), 2, 3)
    ids = jax.jit(policy.presample, static_argnums=(2, 3))(state, jax.random.key(0), 2, 3)
    assert np.all(np.asarray(ids) == -1)
    rows = jnp.arange(32.0)[:, None] + 1.0
    got, valid = memory_lib.gather(rows, ids)
    assert not np.any(np.asarray(valid)) and np.all(np.asarray(got) == 0.0)
    # negative control: plain indexing would silently gather the last row
    assert np.all(np.asarray(rows[ids]) == 32.0)
    # and a filled memory draws valid ids only
    state = policy.add_task(state, np.arange(10), np.zeros(10, np.int32), 0)
    ids = jax.jit(policy.presample, static_argnums=(2, 3))(state, jax.random.key(0), 2, 3)
    assert np.all(np.asarray(memory_lib.gather(rows, ids)[1]))


def test_gather_masks_out_of_range_ids():
    rows = jnp.arange(12).reshape(6, 2)
    got, valid = jax.jit(memory_lib.gather)(rows, jnp.array([0, 5, 6, -1], jnp.int32))
    np.testing.assert_array_equal(np.asarray(valid), [True, True, False, False])
    np.testing.assert_array_equal(np.asarray(got), [[0, 1], [10, 11], [0, 0], [0, 0]])
    with pytest.raises(ValueError, match="ids must be integer"):
        memory_lib.gather(rows, jnp.array([0.0, 1.0]))


def _filled(name="amr"):
    policy = policies.make_replay(name, max_arms=4, capacity=32)
    state = policy.add_task(policy.init(), np.arange(10), np.zeros(10, np.int32), 0)
    return policy, state


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("policy_name", ["amr", "uniform"])
@pytest.mark.parametrize(
    "sample_ids, arm_ids, losses, name",
    [
        (jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.float32), jnp.ones(3), "arm_ids"),
        (jnp.zeros(3, jnp.float32), jnp.zeros(3, jnp.int32), jnp.ones(3), "sample_ids"),
        (jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.int32), jnp.ones(3, jnp.int32), "losses"),
        (jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.int32), jnp.ones(4), "losses"),
        (jnp.zeros(4, jnp.int32), jnp.zeros(3, jnp.int32), jnp.ones(3), "losses"),
    ],
)
def test_observe_names_the_bad_argument(sample_ids, arm_ids, losses, name, policy_name, jit):
    policy, state = _filled(policy_name)
    observe = jax.jit(policy.observe) if jit else policy.observe
    with pytest.raises(ValueError, match=f"observe: .*{name}"):
        observe(state, sample_ids, arm_ids, losses)
    # negative control: well-formed arguments go through
    observe(state, jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.int32), jnp.ones(3))


@pytest.mark.parametrize("jit", [False, True])
def test_record_new_names_the_bad_argument(jit):
    policy, state = _filled()
    record = jax.jit(policy.record_new) if jit else policy.record_new
    with pytest.raises(ValueError, match="record_new: sample_ids"):
        record(state, jnp.zeros(3, jnp.float32), jnp.ones(3))
    with pytest.raises(ValueError, match="record_new: losses"):
        record(state, jnp.zeros(3, jnp.int32), jnp.ones((3, 1)))
    state = record(state, jnp.array([-1, 2, 40], jnp.int32), jnp.array([5.0, 1.0, 7.0]))
    ref = np.asarray(state.sample_ref)
    assert ref[2] == 1.0 and np.isnan(ref[-1]) and np.isfinite(ref).sum() == 1  # -1 / 40 dropped, not wrapped


def _readme_blocks():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("## Using the replay selection in your own loop", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]


def test_readme_section_is_the_tested_example():
    example = open(os.path.join(ROOT, "examples", "own_loop.py"), encoding="utf-8").read()
    blocks = _readme_blocks()
    assert len(blocks) == 2
    imports, code = blocks[0].split("\n\n@", 1)
    for line in imports.splitlines():
        assert line in example.splitlines(), line  # every import is the example's
    assert "@" + code.strip() in example  # the chunk function, verbatim
    assert blocks[1].strip() in example  # the loop around it, verbatim
    # negative control: an edited snippet would not match
    assert "@" + code.replace("pre-update", "post-update").strip() not in example
