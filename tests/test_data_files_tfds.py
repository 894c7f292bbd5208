"""Tests of amr.data's sources for your own data: files (text and images by glob) and TFDS (builder
configs or splits as domains, tiny real datasets prepared offline): shapes / dtypes, leak-free splits,
determinism, and the ValueErrors that name the offending config key. Built-in sources: test_data.py."""

import chex
import numpy as np
import pytest
from PIL import Image

from amr.data import make_tasks
from tests.support.data_checks import assert_disjoint, assert_same, data_config

# ------------------------------------------------------------------ files


def _write_text(tmp_path):
    rng = np.random.default_rng(0)
    for kind, alphabet in (("a", b"abcdefgh \n"), ("b", b"0123456789+-\n")):
        d = tmp_path / kind
        d.mkdir()
        for i in range(6):
            (d / f"{i}.txt").write_bytes(rng.choice(list(alphabet), size=700).astype(np.uint8).tobytes())


def test_files_text(tmp_path):
    _write_text(tmp_path)
    cfg = data_config(
        "files",
        kind="text",
        seq_len=32,
        test_per_task=8,
        max_train_per_task=0,
        domains=(f"digits={tmp_path}/b/*.txt", ("letters", str(tmp_path / "a" / "**" / "*.txt"))),
    )
    tasks = make_tasks(cfg)
    assert [t.name for t in tasks] == ["digits", "letters"]
    for t, alphabet in zip(tasks, (b"0123456789+-\n", b"abcdefgh \n")):
        chex.assert_shape(t.test, (8, 32))
        chex.assert_type(t.train, np.int32)
        assert set(np.unique(t.train).tolist()) <= set(alphabet)
        assert len(t.train) >= (5 * 700) // 32 - 1  # every file but the held-out one
        assert_disjoint(t)
    assert_same(tasks, make_tasks(cfg))


def test_files_images(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "many").mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "many" / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (64, 80), dtype=np.uint8)).save(tmp_path / "single.jpg", quality=95)
    Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)).save(tmp_path / "alpha.png")
    cfg = data_config(
        "files",
        kind="image",
        image_size=16,
        stride=8,
        test_per_task=6,
        max_train_per_task=0,
        domains=(f"one={tmp_path}/single.jpg", f"many={tmp_path}/many/*.png", f"rgba={tmp_path}/alpha.png"),
    )
    tasks = make_tasks(cfg)
    assert [t.name for t in tasks] == ["one", "many", "rgba"]
    for t in tasks:
        chex.assert_shape([t.train, t.test], (None, 16, 16, 3))
        chex.assert_type(t.train, np.float32)
        assert 0.0 <= t.train.min() and t.train.max() <= 1.0 and len(t.test) == 6
        assert_disjoint(t)
    # Several files: whole files held out (each 40x48 image holds 4*5 = 20 patches).
    assert len(tasks[1].train) + 20 == 5 * 20
    assert_same(tasks, make_tasks(cfg))
    gray = make_tasks(
        data_config(
            "files", kind="image", image_size=16, channels=1, test_per_task=6, domains=(f"one={tmp_path}/single.jpg",)
        )
    )
    chex.assert_shape(gray[0].test, (6, 16, 16, 1))


def test_files_errors(tmp_path):
    (tmp_path / "x.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"data\.domains.*nothing_here"):
        make_tasks(data_config("files", domains=(f"a={tmp_path}/nothing_here/*.txt",)))
    with pytest.raises(ValueError, match=r"data\.domains"):
        make_tasks(data_config("files", domains=("no_glob_given",)))
    with pytest.raises(ValueError, match=r"data\.domains.*x\.txt"):
        make_tasks(data_config("files", kind="image", domains=(f"a={tmp_path}/x.txt",)))
    with pytest.raises(ValueError, match=r"data\.kind"):
        make_tasks(data_config("files", kind="audio", domains=(f"a={tmp_path}/x.txt",)))
    with pytest.raises(ValueError, match=r"data\.domains"):
        make_tasks(data_config("files"))  # no domains by default


# ------------------------------------------------------------------ tfds


@pytest.fixture(scope="module")
def tiny_tfds_dir(tmp_path_factory):
    from support import tiny_domains

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    tiny_domains.prepare(data_dir)
    return data_dir


def test_tfds_config_domains(tiny_tfds_dir):
    cfg = data_config(
        "tfds",
        tfds_name="tiny_domains",
        tfds_data_dir=tiny_tfds_dir,
        domains=("dark", "bright"),
        image_size=8,
        test_per_task=5,
        max_train_per_task=0,
    )
    tasks = make_tasks(cfg)
    assert [t.name for t in tasks] == ["dark", "bright"]
    for t in tasks:
        chex.assert_shape(t.train, (24, 8, 8, 3))  # the whole train split
        chex.assert_shape(t.test, (5, 8, 8, 3))  # sampled from the test split
        chex.assert_type(t.train, np.float32)
        assert_disjoint(t)
    assert tasks[0].train.mean() < 0.5 < tasks[1].train.mean()  # dark = [0, 128), bright = [128, 256)
    assert_same(tasks, make_tasks(cfg))
    one = make_tasks(
        data_config(
            "tfds",
            tfds_name="tiny_domains",
            tfds_data_dir=tiny_tfds_dir,
            domains=("bright",),
            image_size=8,
            channels=1,
            test_per_task=3,
            max_train_per_task=10,
            tfds_test_split="",
        )
    )
    chex.assert_shape(one[0].train, (10, 8, 8, 1))
    chex.assert_shape(one[0].test, (3, 8, 8, 1))


def test_tfds_split_domains(tiny_tfds_dir):
    tasks = make_tasks(
        data_config(
            "tfds",
            tfds_name="tiny_splits",
            tfds_data_dir=tiny_tfds_dir,
            domains=("b", "a"),
            image_size=8,
            test_per_task=4,
            max_train_per_task=0,
        )
    )
    assert [t.name for t in tasks] == ["b", "a"]
    chex.assert_shape(tasks[0].train, (12, 8, 8, 3))  # 16 - 4 carved out
    chex.assert_shape(tasks[1].train, (16, 8, 8, 3))  # 20 - 4
    for t in tasks:
        assert_disjoint(t)


def test_tfds_errors(tiny_tfds_dir, tmp_path):
    base = dict(tfds_name="tiny_domains", tfds_data_dir=tiny_tfds_dir, image_size=8, test_per_task=2)
    missing = str(tmp_path / "absent")
    # The data dir is checked before anything else, even before other bad keys.
    with pytest.raises(ValueError, match=r"data\.tfds_data_dir"):
        make_tasks(
            data_config(
                "tfds",
                **{
                    **base,
                    "tfds_data_dir": missing,
                    "domains": ("nope",),
                    "image_size": 0,
                    "tfds_name": "no_such_dataset",
                },
            )
        )
    with pytest.raises(ValueError, match=r"data\.tfds_data_dir"):  # prepared elsewhere, not here
        make_tasks(data_config("tfds", **{**base, "tfds_data_dir": str(tmp_path), "domains": ("dark",)}))
    with pytest.raises(ValueError, match=r"data\.domains"):
        make_tasks(data_config("tfds", **{**base, "domains": ("medium",)}))
    with pytest.raises(ValueError, match=r"data\.domains"):
        make_tasks(data_config("tfds", **{**base, "tfds_name": "tiny_splits", "domains": ("c",)}))
    with pytest.raises(ValueError, match=r"data\.tfds_name"):
        make_tasks(data_config("tfds", **{**base, "tfds_name": "no_such_dataset", "domains": ("x",)}))
    with pytest.raises(ValueError, match=r"data\.tfds_test_split"):
        make_tasks(data_config("tfds", **{**base, "domains": ("dark",), "tfds_test_split": "validation"}))
    with pytest.raises(ValueError, match=r"data\.image_key"):
        make_tasks(data_config("tfds", **{**base, "domains": ("dark",), "image_key": "photo"}))
    with pytest.raises(ValueError, match=r"data\.test_per_task"):
        make_tasks(data_config("tfds", **{**base, "domains": ("dark",), "test_per_task": 9}))


def test_tfds_mock_domainnet(tmp_path):
    import tensorflow_datasets as tfds

    cfg = data_config(
        "tfds",
        tfds_data_dir=str(tmp_path),
        domains=("sketch", "real"),
        image_size=16,
        test_per_task=4,
        max_train_per_task=6,
    )
    with tfds.testing.mock_data(num_examples=12):
        tasks = make_tasks(cfg)
        # The mock generates example i identically for every split: here the test part is
        # carved out of "train" instead, so no example is dropped as shared.
        carved = make_tasks({**cfg.to_dict(), "tfds_test_split": ""})
    assert [t.name for t in tasks] == ["sketch", "real"]
    for t in tasks:
        chex.assert_shape([t.train, t.test], [(None, 16, 16, 3), (4, 16, 16, 3)])
        assert 0 < len(t.train) <= 6 and 0.0 <= t.train.min() and t.train.max() <= 1.0
        assert_disjoint(t)
    for t in carved:
        chex.assert_shape([t.train, t.test], [(6, 16, 16, 3), (4, 16, 16, 3)])
        assert_disjoint(t)


def test_resize_square():
    from amr.data import tfds_source

    x = np.zeros((10, 30, 3), np.uint8)
    x[:, 10:20] = 255  # the center square is white
    chex.assert_trees_all_close(tfds_source.resize_square(x, 4, 3), np.ones((4, 4, 3)), atol=1e-6)
    chex.assert_shape(tfds_source.resize_square(np.zeros((7, 5, 1), np.uint8), 9, 3), (9, 9, 3))
