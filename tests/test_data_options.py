"""Tests of the data options added for the benchmarks: `data.test_band` (where a single photo's
held-out columns lie), `data.resplit_per_seed` with `make_tasks(..., run_seed=k)` (the run seed
picks the splits), and their config errors, which name the key before any data is read."""

import numpy as np
import pytest

from amr.data import default_data_config, images, make_tasks

WIDTH, HEIGHT, SIZE = 96, 24, 8


def _column_photo() -> images.Photo:
    """A photo whose pixel (r, c) holds c / 255 in channel 0: a patch tells which columns it spans."""
    img = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    img[..., 0] = np.arange(WIDTH)[None, :] / 255.0
    img[..., 1] = np.arange(HEIGHT)[:, None] / 255.0
    return images.Photo(HEIGHT, WIDTH, lambda: img)


def _columns(patches) -> set[int]:
    return set(np.rint(patches[..., 0] * 255).astype(int).ravel().tolist())


def _task(seed: int, band: str):
    return images.patch_task(
        "cols",
        [_column_photo()],
        image_size=SIZE,
        stride=2,
        test_fraction=0.25,
        test_per_task=8,
        max_train=0,
        seed=seed,
        test_band=band,
    )


def test_right_band_holds_out_the_right_most_columns_for_every_seed():
    for seed in range(4):
        t = _task(seed, "right")
        assert min(_columns(t.test)) >= WIDTH - 24
        assert max(_columns(t.train)) < WIDTH - 24


@pytest.mark.parametrize("seed", range(6))
def test_seeded_band_is_disjoint_from_train_columns(seed):
    t = _task(seed, "seeded")
    test_cols, train_cols = _columns(t.test), _columns(t.train)
    assert not test_cols & train_cols
    assert max(test_cols) - min(test_cols) < 24  # inside one band of test_fraction * width columns
    assert len(t.train) > 0 and len(t.test) == 8


def _band_start(task) -> int:
    """The first column no train patch covers (train patches are all grid patches outside the band)."""
    return min(set(range(WIDTH)) - _columns(task.train))


def test_seeded_band_moves_with_the_seed():
    assert len({_band_start(_task(seed, "seeded")) for seed in range(8)}) >= 3
    # negative control: the right-most band does not move
    assert {_band_start(_task(seed, "right")) for seed in range(8)} == {WIDTH - 24}
    # the same seed gives the same arrays
    a, b = _task(5, "seeded"), _task(5, "seeded")
    np.testing.assert_array_equal(a.test, b.test)
    np.testing.assert_array_equal(a.train, b.train)


def test_seeded_band_on_a_bundled_photo():
    cfg = dict(source="skimage_patches", domains=("camera",), max_train_per_task=64, test_per_task=16)
    right = make_tasks(cfg)[0]
    seeded = [make_tasks(dict(cfg, test_band="seeded", seed=s))[0] for s in (0, 1)]
    assert not np.array_equal(seeded[0].test, seeded[1].test)
    assert not np.array_equal(right.test, seeded[0].test)


def _digits(**kw):
    return dict(source="digits", test_per_task=20, **kw)


def test_resplit_per_seed_draws_the_split_from_the_run_seed():
    base = make_tasks(_digits())
    off = make_tasks(_digits(), run_seed=2)  # off: the run seed does not touch the data
    on = make_tasks(_digits(resplit_per_seed=True), run_seed=2)
    seed2 = make_tasks(_digits(seed=2))
    for b, f, o, s in zip(base, off, on, seed2):
        np.testing.assert_array_equal(b.test, f.test)
        np.testing.assert_array_equal(o.test, s.test)  # data seed 0 + run seed 2
        np.testing.assert_array_equal(o.train, s.train)
        assert not np.array_equal(b.test, o.test)
    again = make_tasks(_digits(resplit_per_seed=True), run_seed=2)
    np.testing.assert_array_equal(again[0].train, on[0].train)
    # run_seed None (a runner that does not pass it) keeps data.seed
    np.testing.assert_array_equal(make_tasks(_digits(resplit_per_seed=True))[0].test, base[0].test)


def test_resplit_moves_the_image_band_with_the_run_seed():
    cfg = dict(
        source="skimage_patches",
        domains=("coffee",),
        max_train_per_task=64,
        test_per_task=16,
        test_band="seeded",
        resplit_per_seed=True,
    )
    a, b = (make_tasks(cfg, run_seed=k)[0] for k in (0, 1))
    assert not np.array_equal(a.test, b.test)


@pytest.mark.parametrize(
    "source, overrides, key",
    [
        ("skimage_patches", dict(test_band="left"), "data.test_band"),
        ("files", dict(kind="image", domains=("a=/nonexistent/*.png",), test_band=3), "data.test_band"),
        ("digits", dict(resplit_per_seed=1), "data.resplit_per_seed"),
        ("python_text", dict(resplit_per_seed="true"), "data.resplit_per_seed"),
    ],
)
def test_option_errors_name_the_key(source, overrides, key, monkeypatch):
    monkeypatch.setattr(images, "skimage_photo", lambda *a: pytest.fail("data read"))
    cfg = {**default_data_config(source).to_dict(), **overrides}
    with pytest.raises(ValueError, match=key.replace(".", "\\.")):
        make_tasks(cfg)


def test_run_seed_must_be_a_non_negative_integer():
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="run_seed"):
            make_tasks(_digits(), run_seed=bad)
