"""Tests of amr.data's built-in sources (python_text, skimage_patches, digits): shapes / dtypes / ranges,
leak-free splits, determinism, domain order; and, for every source, the ValueErrors that name the offending
config key. Your own files and TFDS: test_data_files_tfds.py."""

import os
import socket

import chex
import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
from sklearn import datasets

from amr.data import SOURCES, Task, default_data_config, images, make_tasks, splits
from amr.data import tasks as tasks_lib
from tests.support.data_checks import assert_disjoint, assert_same, data_config

# ------------------------------------------------------------------ python_text

TEXT = dict(seq_len=64, max_train_per_task=96, test_per_task=16)


def test_python_text_domains_shapes_ranges_disjoint():
    tasks = make_tasks(data_config("python_text", **TEXT))
    assert [t.name for t in tasks] == ["docs", "stdlib", "headers", "licenses"]
    for t in tasks:
        chex.assert_shape(t.train, (96, 64))
        chex.assert_shape(t.test, (16, 64))
        chex.assert_type([t.train, t.test], np.int32)
        assert 0 <= t.train.min() and t.train.max() <= 255
        assert_disjoint(t)
    letters = np.isin(tasks[0].train, np.frombuffer(b"abcdefghijklmnopqrstuvwxyz ", np.uint8))
    assert letters.mean() > 0.6  # English prose
    assert any(b"def " in bytes(w.astype(np.uint8)) for w in tasks[1].train)  # python source
    assert any(
        b"#define" in bytes(w.astype(np.uint8)) or b"#ifndef" in bytes(w.astype(np.uint8)) for w in tasks[2].train
    )  # C headers


def test_python_text_stdlib_excludes_site_packages_and_tests():
    from amr.data import python_text

    paths = python_text.stdlib_paths()
    assert len(paths) > 100
    for p in paths:
        parts = set(p.split(os.sep))
        assert not parts & {"site-packages", "test", "tests", "pydoc_data"}, p
    assert paths == sorted(paths)
    assert all(p.endswith(".h") for p in python_text.header_paths())
    assert all(".dist-info" in p for p in python_text.license_paths())


def test_python_text_deterministic_order_and_seed():
    cfg = data_config("python_text", domains=("headers", "docs"), **TEXT)
    a, b = make_tasks(cfg), make_tasks(cfg)
    assert_same(a, b)
    reversed_ = make_tasks(data_config("python_text", domains=("docs", "headers"), **TEXT))
    assert_same(a, reversed_[::-1])  # a domain's arrays do not depend on the others
    other_seed = make_tasks(data_config("python_text", domains=("headers", "docs"), seed=1, **TEXT))
    assert not np.array_equal(a[0].train, other_seed[0].train)


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(
    lengths=st.lists(st.integers(0, 400), min_size=2, max_size=12),
    seq_len=st.integers(2, 40),
    test_per_task=st.integers(1, 6),
    max_train=st.integers(0, 20),
    seed=st.integers(0, 2**31 - 1),
)
def test_split_documents_holds_out_whole_documents(lengths, seq_len, test_per_task, max_train, seed):
    # Document i is the byte i repeated: a window's bytes say which documents it came from.
    docs = [bytes([i + 1]) * n for i, n in enumerate(lengths)]
    readers = [lambda n, d=d: d if n < 0 else d[:n] for d in docs]
    if sum(lengths) < test_per_task * seq_len:  # the test part reads until it holds test_per_task windows
        with pytest.raises(ValueError, match="data.test_per_task"):
            splits.split_documents("d", readers, seq_len, test_per_task, max_train, seed)
        return
    train, test = splits.split_documents("d", readers, seq_len, test_per_task, max_train, seed)
    chex.assert_shape(test, (test_per_task, seq_len))
    assert train.shape[1:] == (seq_len,) and (not max_train or len(train) <= max_train)
    assert not set(np.unique(train).tolist()) & set(np.unique(test).tolist())
    again = splits.split_documents("d", readers, seq_len, test_per_task, max_train, seed)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(test, again[1])


def test_split_documents_reads_only_what_is_needed():
    reads = []

    def reader(i):
        def read(n):
            reads.append((i, n))
            return bytes([i]) * 1000 if n < 0 else bytes([i]) * min(n, 1000)

        return read

    splits.split_documents("d", [reader(i) for i in range(50)], 10, 5, 20, 0)
    assert sum(min(n, 1000) if n >= 0 else 1000 for _, n in reads) <= (5 + 21) * 10 + 1000
    assert len(reads) <= 3


def test_drop_shared_rows():
    train = np.array([[1, 2], [3, 4], [1, 2], [5, 6]], np.int32)
    test = np.array([[1, 2], [7, 8]], np.int32)
    np.testing.assert_array_equal(splits.drop_shared_rows(train, test), [[3, 4], [5, 6]])
    np.testing.assert_array_equal(splits.drop_shared_rows(train, test[:0]), train)


# ------------------------------------------------------------------ skimage_patches


@pytest.mark.parametrize("channels", [1, 3])
def test_skimage_patches_shapes_ranges_disjoint(channels):
    cfg = data_config(
        "skimage_patches",
        domains=("coffee", "camera", "page"),
        image_size=12,
        stride=6,
        channels=channels,
        max_train_per_task=200,
        test_per_task=40,
    )
    tasks = make_tasks(cfg)
    assert [t.name for t in tasks] == ["coffee", "camera", "page"]
    for t in tasks:
        chex.assert_shape(t.train, (200, 12, 12, channels))
        chex.assert_shape(t.test, (40, 12, 12, channels))
        chex.assert_type([t.train, t.test], np.float32)
        assert 0.0 <= t.train.min() and t.train.max() <= 1.0
        assert t.train.std() > 0.01  # real photo content
        assert_disjoint(t)
    assert_same(tasks, make_tasks(cfg))


def test_every_listed_skimage_photo_loads_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    for name in images.SKIMAGE_PHOTOS:
        photo = images.skimage_photo(name, 3)
        x = photo.load()
        chex.assert_shape(x, (photo.height, photo.width, 3))
        assert x.dtype == np.float32 and 0.0 <= x.min() <= x.max() <= 1.0 and photo.height >= 100


def test_patch_task_column_split_never_overlaps():
    # Pixel value = its column / width: a patch's values say which columns it covers.
    h, w, size = 40, 100, 8
    img = np.broadcast_to((np.arange(w, dtype=np.float32) / w)[None, :, None], (h, w, 1)).copy()
    img += (np.arange(h, dtype=np.float32) / (1000 * h))[:, None, None]  # rows distinct too
    photo = images.Photo(h, w, lambda: img)
    task = images.patch_task(
        "cols", [photo], image_size=size, stride=4, test_fraction=0.2, test_per_task=10, max_train=0, seed=3
    )
    cut = w - 20
    assert task.train.max() < cut / w and task.test.min() >= cut / w - 1e-6
    assert len(task.train) == len(images.grid(h, w, 0, cut, size, 4))
    corners = images.grid(h, w, 0, w, size, 4)
    np.testing.assert_array_equal(images.crop(img, corners[:3], size)[1], img[0:8, 4:12])


def test_to_float_image_conversions():
    gray = np.array([[0, 255]], np.uint8)
    chex.assert_trees_all_close(images.to_float_image(gray, 3), np.array([[[0.0] * 3, [1.0] * 3]]))
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255
    chex.assert_trees_all_close(images.to_float_image(rgba, 1), np.full((2, 2, 1), 0.299), atol=1e-6)
    chex.assert_trees_all_close(images.to_float_image(np.ones((2, 2), bool), 1), np.ones((2, 2, 1)))
    with pytest.raises(ValueError):
        images.to_float_image(np.zeros((2, 2, 2)), 3)


# ------------------------------------------------------------------ digits


def test_digits_class_incremental():
    tasks = make_tasks(data_config("digits"))
    assert [t.name for t in tasks] == ["0-1", "2-3", "4-5", "6-7", "8-9"]
    digits = datasets.load_digits()
    labels_of = {}
    for img, y in zip(digits.images, digits.target):
        labels_of.setdefault((img / 16.0).astype(np.float32).tobytes(), set()).add(int(y))
    for t, lo in zip(tasks, range(0, 10, 2)):
        chex.assert_shape(t.test, (60, 8, 8, 1))
        chex.assert_shape(t.train, (None, 8, 8, 1))
        assert len(t.train) > 250 and 0.0 <= t.train.min() and t.train.max() <= 1.0
        assert_disjoint(t)
        for part in (t.train, t.test):
            for row in part:
                assert labels_of[row[..., 0].tobytes()] & {lo, lo + 1}
        test_labels = [min(labels_of[r[..., 0].tobytes()]) for r in t.test]
        counts = np.bincount(digits.target, minlength=10)[[lo, lo + 1]]
        expected = 60 * counts / counts.sum()  # stratified: each class in proportion
        assert np.all(np.abs(np.bincount(test_labels, minlength=10)[[lo, lo + 1]] - expected) <= 1)
    assert_same(tasks, make_tasks(data_config("digits")))


def test_digits_uneven_groups_and_order():
    tasks = make_tasks(
        data_config("digits", classes_per_task=3, domains=("9", "0-2"), test_per_task=4, max_train_per_task=50)
    )
    assert [t.name for t in tasks] == ["9", "0-2"]
    chex.assert_shape([tasks[0].train, tasks[1].train], (50, 8, 8, 1))


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "source,overrides,key",
    [
        ("nope", {}, "data.source"),
        ("python_text", {"domains": ("docs", "poetry")}, "data.domains"),
        ("python_text", {"domains": ()}, "data.domains"),
        ("python_text", {"domains": "docs"}, "data.domains"),
        ("python_text", {"domains": ("docs", "docs")}, "data.domains"),
        ("python_text", {"seq_len": 1}, "data.seq_len"),
        ("python_text", {"seq_len": "128"}, "data.seq_len"),
        ("python_text", {"test_per_task": 0}, "data.test_per_task"),
        ("python_text", {"test_per_task": 10**7}, "data.test_per_task"),
        ("python_text", {"max_train_per_task": -1}, "data.max_train_per_task"),
        ("python_text", {"seed": -1}, "data.seed"),
        ("python_text", {"max_trian_per_task": 5}, "data.max_trian_per_task"),
        ("skimage_patches", {"domains": ("camera", "lena")}, "data.domains"),
        ("skimage_patches", {"image_size": 0}, "data.image_size"),
        ("skimage_patches", {"channels": 2}, "data.channels"),
        ("skimage_patches", {"stride": 0}, "data.stride"),
        ("skimage_patches", {"test_fraction": 1.0}, "data.test_fraction"),
        ("skimage_patches", {"domains": ("camera",), "image_size": 600}, "data.test_per_task"),
        ("digits", {"domains": ("0-2",)}, "data.domains"),
        ("digits", {"classes_per_task": 0}, "data.classes_per_task"),
        ("digits", {"test_per_task": 400}, "data.test_per_task"),
    ],
)
def test_bad_config_names_the_key(source, overrides, key):
    cfg = dict(source=source, **overrides)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        make_tasks(cfg)


def test_min_examples_names_task_and_key():
    cfg = data_config("python_text", domains=("docs",), seq_len=64, max_train_per_task=10, test_per_task=4)
    assert len(make_tasks(cfg, min_examples=10)[0].train) == 10
    with pytest.raises(ValueError, match=r"data\.max_train_per_task.*'docs'.*10.*< 32"):
        make_tasks(cfg, min_examples=32)
    with pytest.raises(ValueError, match="min_examples"):
        make_tasks(cfg, min_examples=-1)


def test_task_checks_shapes():
    with pytest.raises(ValueError, match="trailing shape"):
        Task("t", np.zeros((3, 4), np.int32), np.zeros((2, 5), np.int32))


@pytest.mark.parametrize("source", SOURCES)
def test_default_configs_resolve(source):
    cfg = default_data_config(source)
    assert cfg.source == source and cfg.domains is not None
    if source == "tfds":
        cfg.tfds_data_dir = "/"  # the default (~/tensorflow_datasets) need not exist here
    if source == "files":
        cfg.domains = ("a=*.txt",)
    resolved = tasks_lib.resolve_config(cfg)
    assert set(resolved) == set(cfg.keys())


def test_quickstart_defaults_are_fast():
    import time

    for source in ("python_text", "skimage_patches", "digits"):
        start = time.perf_counter()
        tasks = make_tasks(default_data_config(source), min_examples=32)
        assert len(tasks) >= 4 and time.perf_counter() - start < 10.0, source


def test_licenses_domain_leaves_out_amr_itself():
    """amr's METADATA carries the README: installing amr must not change the licenses data."""
    from amr.data.python_text import license_paths

    ours = [
        p
        for p in license_paths()
        if any(part.startswith("amr-") and part.endswith(".dist-info") for part in p.split(os.sep))
    ]
    assert not ours
