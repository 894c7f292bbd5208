"""Stacked named variants (`amr+tail+ewc`): overrides merged left to right, conflicts named before any run, and
single-name entries parsed, recorded and stored exactly as before stacking existed."""

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amr.analysis import evidence
from amr.methods.registry import METHODS
from amr.runner import named_variants, sweep, variants
from configs import benchmarks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = tuple(named_variants.VARIANTS)
BASES = ("none", "uniform", "amr")


def _conflict(names):
    """The first (earlier name, later name, key) where two of `names` set a key to different values, or None:
    the rule computed independently of `merged_overrides`."""
    for j, later in enumerate(names):
        for earlier in names[:j]:
            a, b = named_variants.VARIANTS[earlier][1], named_variants.VARIANTS[later][1]
            for key in b:
                if key in a and a[key] != b[key]:
                    return earlier, later, key
    return None


@settings(max_examples=200, deadline=None)
@given(
    base=st.sampled_from(BASES),
    names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True),
)
def test_stacked_overrides_are_the_union_or_a_named_conflict(base, names):
    entry = "+".join([base, *names])
    conflict = _conflict(names)
    if conflict is not None:
        with pytest.raises(ValueError) as err:
            variants.parse_named(entry, sweep.STRATEGIES)
        msg = str(err.value)
        assert repr(entry) in msg and repr(conflict[2]) in msg, msg  # the entry and the key
        assert all(repr(n) in msg for n in conflict[:2]), msg  # both names
        return
    v = variants.parse_named(entry, sweep.STRATEGIES)
    assert v.name == entry and v.strategy == base and v.dirname == entry
    union = {k: val for n in names for k, val in named_variants.VARIANTS[n][1].items()}
    assert v.overrides == union and v.meta["overrides"] == union
    assert v.meta["kind"] == evidence.NAMED and v.meta["base"] == base and v.meta["name"] == "+".join(names)
    assert named_variants.names(entry) == tuple(names)
    assert named_variants.twin(entry) == "+".join(["uniform", *names])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("base", BASES)
def test_a_single_name_is_parsed_recorded_and_stored_as_before(base, name):
    """The Variant of a one-name entry is what parse_named built before stacking (meta without `names`), and its
    workdir is the one existing sweeps resume from."""
    entry = f"{base}+{name}"
    note, overrides = named_variants.VARIANTS[name]
    v = variants.parse_named(entry, sweep.STRATEGIES)
    assert v == variants.Variant(
        entry,
        base,
        dict(overrides),
        {"kind": evidence.NAMED, "base": base, "name": name, "note": note, "overrides": dict(overrides)},
    )
    assert variants.workdir("/b", v) == f"/b/variants/{entry}"


def test_the_committed_sweeps_entries_keep_their_workdirs():
    """Every named entry of docs/results.json resolves to the workdir its runs are stored in and records the same
    fields."""
    with open(os.path.join(ROOT, "docs", "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    seen = 0
    for entry in results["benchmarks"].values():
        for name, e in entry["strategies"].items():
            if (e.get("variant") or {}).get("kind") != evidence.NAMED:
                continue
            v = variants.parse_named(name, sweep.STRATEGIES)
            assert variants.workdir("/w/text", v) == os.path.join("/w/text", "variants", name)
            # the same record (a variant's values may have changed since, e.g. `back`'s share_max in 932105d)
            assert set(v.meta) == set(e["variant"])
            # a one-name entry is recorded as before stacking existed; a stacked one lists its names
            assert ("names" in v.meta) == (len(named_variants.names(name)) > 1)
            keys = ("kind", "base", "name", *(("names",) if "names" in v.meta else ()))
            assert {k: v.meta[k] for k in keys} == {k: e["variant"][k] for k in keys}
            seen += 1
    assert seen > 0


def test_the_recommended_amr_stacks_with_every_method():
    for m in METHODS:
        v = variants.parse_named(f"{named_variants.RECOMMENDED_AMR}+{m}", sweep.STRATEGIES)
        rec = named_variants.merged_overrides(named_variants.RECOMMENDED_AMR)
        assert v.overrides == {**rec, "methods": (m,)}
        assert v.meta["names"] == [*named_variants.names(named_variants.RECOMMENDED_AMR), m]
    assert named_variants.twin("amr+tail+ewc") == "uniform+tail+ewc"


@pytest.mark.parametrize(
    "entry, first, second, key",
    [
        ("amr+front+tail", "front", "tail", "replay.share_schedule"),
        ("amr+tail+front", "tail", "front", "replay.share_schedule"),
        ("uniform+tail+controller", "tail", "controller", "replay.share"),
        ("amr+tail+ewc+l2sp", "ewc", "l2sp", "methods"),  # one method per entry: both set `methods`
    ],
)
def test_a_conflicting_pair_fails_by_name(entry, first, second, key):
    """Negative control: two names setting one key to different values fail, naming the entry, both and the key."""
    with pytest.raises(ValueError, match=rf"'{first}' and '{second}' set '{key}'") as err:
        variants.parse_named(entry, sweep.STRATEGIES)
    assert repr(entry) in str(err.value)


def test_agreeing_names_stack_and_bad_parts_fail():
    v = variants.parse_named("amr+steady+benefit", sweep.STRATEGIES)  # both set bandit.normalize to 'pooled'
    assert v.overrides == {"bandit.aggregate": "segment", "bandit.normalize": "pooled", "replay.reward": "benefit"}
    with pytest.raises(ValueError, match="'tail' appears twice"):
        variants.parse_named("amr+tail+tail", sweep.STRATEGIES)
    for bad in ("amr+tail+", "amr++tail", "amr+tail+nosuch", "tilted+tail+ewc"):
        with pytest.raises(ValueError, match=r"is not '<strategy>\+<name>\[\+<name>\.\.\.\]'"):
            variants.parse_named(bad, sweep.STRATEGIES)


calls: list = []


def _fake_train(config, workdir, progress=True):
    """Stands in for a training run: records what it was asked to run and writes plausible run files."""
    os.makedirs(os.path.join(workdir, "runs"), exist_ok=True)
    calls.append((os.path.basename(workdir), config.replay.share, config.replay.share_schedule, tuple(config.methods)))
    for s in config.strategies:
        for seed in config.seeds:
            run = {
                "seed": seed,
                "avg_forgetting": 0.3 + 0.01 * seed,
                "max_forgetting": 0.6,
                "new_task_loss": 2.0,
                "final_avg_loss": 2.0,
                "forgetting_per_task": [0.3, 0.3],
                "loss_matrix": [[1.0, 2.0], [1.5, 2.0]],
                "within_budget": True,
                "flops": {"total": 10.0, "train_new": 8.0},
                "init_losses": [3.0, 3.0],
            }
            with open(os.path.join(workdir, "runs", f"{s}_seed{seed}.json"), "w") as f:
                json.dump(run, f)
    return {"tasks": ["a", "b"]}


def test_a_stacked_entry_runs_its_merged_overrides_in_its_own_workdir(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "train_and_evaluate", _fake_train)
    calls.clear()
    results = sweep.run_sweep(
        ["digits"], ["uniform", "amr+tail", "amr+tail+ewc"], [0, 1], str(tmp_path / "runs"), str(tmp_path / "r.json"),
        smoke=True, progress=False, get_config=benchmarks.get, frontier=(), headroom=(), same_split=False,
    )  # fmt: skip
    assert calls == [
        ("digits", "fixed", "front", ()),
        ("amr+tail", "schedule", "tail", ()),
        ("amr+tail+ewc", "schedule", "tail", ("ewc",)),
    ]
    assert sorted(os.listdir(tmp_path / "runs" / "digits" / "variants")) == ["amr+tail", "amr+tail+ewc"]
    e = results["benchmarks"]["digits"]["strategies"]["amr+tail+ewc"]
    assert e["variant"]["name"] == "tail+ewc" and e["variant"]["names"] == ["tail", "ewc"]
    assert e["vs_uniform"]["seeds"] == [0, 1]


def test_a_conflicting_stacked_entry_fails_before_any_run(tmp_path, monkeypatch):
    """Negative control: the sweep refuses the whole plan before training anything."""
    monkeypatch.setattr(sweep, "train_and_evaluate", _fake_train)
    calls.clear()
    with pytest.raises(ValueError, match=r"'amr\+tail\+front': the named variants 'tail' and 'front'"):
        sweep.run_sweep(
            ["digits"], ["uniform", "amr+tail+front"], [0], str(tmp_path), str(tmp_path / "r.json"),
            get_config=benchmarks.get,
        )  # fmt: skip
    assert not calls and not os.listdir(tmp_path)
