"""Tests of the `mixture` source (amr/data/mixture.py): which sources appear in which task,
recurring vs vanishing sources, leak-free splits, per-source held-out sets, determinism per
seed, the seed changing the split, and config errors naming the key before any data is read."""

import chex
import numpy as np
import pytest

from amr.data import Task, default_data_config, make_tasks, mixture, snapshot
from amr.data import python_text as python_text_lib

SMALL = dict(seq_len=32, max_train_per_task=64, test_per_task=16, test_per_source=24)


def _config(**overrides):
    cfg = default_data_config("mixture")
    cfg.update(dict(SMALL, **overrides))
    return cfg


def _rows(x):
    return {bytes(r) for r in np.ascontiguousarray(x).reshape(len(x), -1).view(np.uint8)}


@pytest.fixture(scope="module")
def tasks():
    return make_tasks(_config())


def test_default_schedule_has_recurring_and_vanishing_sources():
    schedule = mixture.source_schedule(default_data_config("mixture").domains)
    assert schedule == {"headers": [0], "docs": [0, 1, 2], "stdlib": [1], "licenses": [2, 3]}
    last = len(default_data_config("mixture").domains) - 1
    vanishing = {s for s, ts in schedule.items() if ts[-1] < last}
    assert vanishing == {"headers", "docs", "stdlib"}  # after tasks 0, 2 and 1; licenses recurs to the end
    # negative control: a stream where every source is in the last task has nothing vanishing
    flat = mixture.source_schedule(("docs+stdlib", "stdlib+docs"))
    assert not {s for s, ts in flat.items() if ts[-1] < 1}


def test_each_task_mixes_its_sources_in_equal_parts(tasks):
    assert [t.name for t in tasks] == list(default_data_config("mixture").domains)
    for t in tasks:
        names = t.name.split("+")
        assert sorted(t.sources) == sorted(names)
        chex.assert_shape(t.train, (64, 32))
        chex.assert_shape(t.test, (16, 32))
        chex.assert_type([t.train, t.test, *t.sources.values()], np.int32)
        for s in names:
            chex.assert_shape(t.sources[s], (24, 32))
            # the task's held-out mixture takes test_per_task // k rows of each of its sources
            assert len(_rows(t.test) & _rows(t.sources[s])) == 16 // len(names)
        others = set(python_text_lib.DOMAINS) - set(names)
        for s in others:  # negative control: a source the task does not mix is not in its test set
            held = next((u.sources[s] for u in tasks if s in u.sources), None)
            if held is not None:
                assert not _rows(t.test) & _rows(held)


@pytest.fixture(scope="module")
def domain_text():
    return {d: b"\0".join(data for _, data in snapshot.read_domain(d)) for d in python_text_lib.DOMAINS}


def _share_in(rows, text: bytes) -> float:
    """The share of rows found verbatim in `text` (rows spanning two documents are not)."""
    return float(np.mean([bytes(r.astype(np.uint8)) in text for r in rows]))


def test_train_and_test_rows_come_from_the_task_sources(domain_text):
    first, second = make_tasks(_config(domains=("docs+headers", "stdlib")))
    for t in (first, second):
        names = t.name.split("+")
        for s, held in t.sources.items():
            assert _share_in(held, domain_text[s]) > 0.8
        for rows in (t.train, t.test):
            assert _share_in(rows, b"\1".join(domain_text[s] for s in names)) > 0.8
            # negative control: rows are not from the sources the task does not mix
            others = [d for d in python_text_lib.DOMAINS if d not in names]
            assert _share_in(rows, b"\1".join(domain_text[s] for s in others)) < 0.05
    docs_rows = [r for r in first.train if bytes(r.astype(np.uint8)) in domain_text["docs"]]
    assert 0.3 * len(first.train) < len(docs_rows) < 0.7 * len(first.train)  # equal parts


def test_recurring_source_brings_new_rows_and_keeps_one_held_out_set(tasks):
    by_name = {t.name: t for t in tasks}
    a, b, c = by_name["headers+docs"], by_name["stdlib+docs"], by_name["licenses+docs"]
    np.testing.assert_array_equal(a.sources["docs"], b.sources["docs"])
    np.testing.assert_array_equal(b.sources["docs"], c.sources["docs"])
    np.testing.assert_array_equal(c.sources["licenses"], by_name["licenses"].sources["licenses"])
    for x, y in ((a, b), (b, c), (a, c)):
        assert not _rows(x.train) & _rows(y.train), "a recurring source must bring new train rows"


def test_no_train_row_equals_any_held_out_row(tasks):
    held = set().union(*(_rows(v) for t in tasks for v in t.sources.values()))
    for t in tasks:
        assert not _rows(t.train) & held
        assert not _rows(t.train) & _rows(t.test)
    # negative control: the check sees an overlap when there is one
    leaky = Task("leak", np.concatenate([tasks[0].train, tasks[0].test[:1]]), tasks[0].test)
    assert _rows(leaky.train) & _rows(leaky.test)


def test_deterministic_per_seed_and_the_seed_changes_the_split(tasks):
    again = make_tasks(_config())
    other = make_tasks(_config(seed=1))
    for x, y, z in zip(tasks, again, other):
        np.testing.assert_array_equal(x.train, y.train)
        np.testing.assert_array_equal(x.test, y.test)
        for s in x.sources:
            np.testing.assert_array_equal(x.sources[s], y.sources[s])
        assert not np.array_equal(x.test, z.test)
        assert not np.array_equal(x.train, z.train)


def test_resplit_per_seed_uses_the_run_seed(tasks):
    fixed = make_tasks(_config(), run_seed=3)  # resplit_per_seed=False: the run seed is ignored
    moved = make_tasks(_config(resplit_per_seed=True), run_seed=1)
    seed1 = make_tasks(_config(seed=1))
    for x, f, m, s1 in zip(tasks, fixed, moved, seed1):
        np.testing.assert_array_equal(x.test, f.test)
        np.testing.assert_array_equal(m.test, s1.test)  # data seed 0 + run seed 1
        assert not np.array_equal(x.test, m.test)


def test_task_sources_must_share_the_trailing_shape():
    x = np.zeros((4, 8), np.int32)
    Task("ok", x, x, {"a": x})
    with pytest.raises(ValueError, match="sources\\['a'\\]"):
        Task("bad", x, x, {"a": np.zeros((4, 9), np.int32)})


@pytest.mark.parametrize(
    "overrides, key",
    [
        (dict(domains=("docs+nope",)), "data.domains"),
        (dict(domains=("docs+docs",)), "data.domains"),
        (dict(domains=("",)), "data.domains"),
        (dict(test_per_source=0), "data.test_per_source"),
        (dict(test_per_task=49), "data.test_per_task"),  # > 2 sources x 24
        (dict(test_per_task=1), "data.test_per_task"),  # < one per source
        (dict(max_train_per_task=0), "data.max_train_per_task"),
        (dict(text_source="web"), "data.text_source"),
        (dict(resplit_per_seed="yes"), "data.resplit_per_seed"),
        (dict(max_train_per_task=100_000), "data.max_train_per_task"),  # more than a source holds
    ],
)
def test_config_errors_name_the_key(overrides, key, monkeypatch):
    if key != "data.max_train_per_task" or overrides["max_train_per_task"] == 0:
        # errors other than "the source holds too few windows" come before any data is read
        monkeypatch.setattr(python_text_lib, "snapshot_readers", lambda d: pytest.fail("data read"))
    with pytest.raises(ValueError, match=key.replace(".", "\\.")):
        make_tasks({**default_data_config("mixture").to_dict(), **SMALL, **overrides})
