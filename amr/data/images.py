"""Image domains as square patches: scikit-image's bundled photos (and, via files.py, the user's).

A domain is one or more photos. With one photo, a band of `test_fraction` of its
columns is held out: the right-most columns (`test_band="right"`) or a band at a
position drawn from the domain's seeded generator (`test_band="seeded"`, so the
data seed moves it); train patches come from the columns outside the band, so no
test patch shares a pixel with a train patch. With several photos whole
photos are held out (the first ones of a seeded permutation, until they hold
`test_per_task` patches). Patches lie on a grid of step `stride`; the count
grows as the stride shrinks (no flips). Values are float32 in [0, 1].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from amr.data import splits
from amr.data.tasks import Task

# Photos bundled inside the scikit-image wheel (checked to load with the network off).
SKIMAGE_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, as PIL's "L" mode


def to_float_image(a: np.ndarray, channels: int) -> np.ndarray:
    """Any 2-D / HxWx{1,3,4} bool, integer or float image -> float32 [H, W, channels] in [0, 1]."""
    a = np.asarray(a)
    if a.dtype == bool:
        x = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        x = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    else:
        x = np.clip(a.astype(np.float32), 0.0, 1.0)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an HxW or HxWx{{1,3,4}} image, got shape {a.shape}.")
    x = x[..., :3] if x.shape[-1] == 4 else x  # drop alpha
    if channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif channels == 1 and x.shape[-1] == 3:
        x = (x @ _LUMA)[..., None]
    return np.ascontiguousarray(x, np.float32)


@dataclasses.dataclass(frozen=True)
class Photo:
    """An image known by its size; `load()` returns float32 [height, width, C]."""

    height: int
    width: int
    load: Callable[[], np.ndarray]


def grid(height: int, width: int, col_lo: int, col_hi: int, size: int, stride: int) -> np.ndarray:
    """int32 [N, 2] (row, col) top-left corners of size x size patches inside columns [col_lo, col_hi)."""
    rows = np.arange(0, height - size + 1, stride)
    cols = np.arange(col_lo, col_hi - size + 1, stride)
    r, c = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([r.ravel(), c.ravel()], axis=1).astype(np.int32)


def crop(image_HxWxC: np.ndarray, corners_Nx2: np.ndarray, size: int) -> np.ndarray:
    """float32 [N, size, size, C] patches at the given top-left corners."""
    windows = np.lib.stride_tricks.sliding_window_view(image_HxWxC, (size, size), axis=(0, 1))
    return np.ascontiguousarray(windows[corners_Nx2[:, 0], corners_Nx2[:, 1]].transpose(0, 2, 3, 1))


def _patches(
    photos: Sequence[Photo],
    regions: Sequence[tuple[int, int]],
    n: int,
    size: int,
    stride: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """A seeded sample of n (0 = all) grid patches from photos[i] restricted to columns regions[i]."""
    corners = [grid(p.height, p.width, lo, hi, size, stride) for p, (lo, hi) in zip(photos, regions)]
    owner = np.concatenate([np.full(len(c), i) for i, c in enumerate(corners)] + [np.zeros(0, int)])
    flat = np.concatenate(corners + [np.zeros((0, 2), np.int32)])
    pick = rng.permutation(len(flat))
    pick = pick[:n] if n else pick
    out = [None] * len(pick)
    for i in np.unique(owner[pick]):
        slots = np.flatnonzero(owner[pick] == i)
        for slot, patch in zip(slots, crop(photos[i].load(), flat[pick[slots]], size)):
            out[slot] = patch
    return np.stack(out) if out else np.zeros((0, size, size, 1), np.float32)


def patch_task(
    name: str,
    photos: Sequence[Photo],
    *,
    image_size: int,
    stride: int,
    test_fraction: float,
    test_per_task: int,
    max_train: int,
    seed: int,
    test_band: str = "right",
) -> Task:
    """A Task of patches [N, image_size, image_size, C] from `photos` (see the module docstring)."""
    rng = splits.domain_rng(seed, "patches", name)
    n_grid = lambda p, lo, hi: len(grid(p.height, p.width, lo, hi, image_size, stride))
    if len(photos) == 1:
        (p,) = photos
        band = max(int(round(p.width * test_fraction)), image_size)
        lo = int(rng.integers(0, p.width - band + 1)) if test_band == "seeded" else p.width - band
        test_set, test_regions = [p], [(lo, lo + band)]
        train_set, train_regions = [p, p], [(0, lo), (lo + band, p.width)]
    else:
        order = rng.permutation(len(photos))
        held, k = 0, 0
        while k < len(order) and held < test_per_task:
            held += n_grid(photos[order[k]], 0, photos[order[k]].width)
            k += 1
        test_set = [photos[i] for i in sorted(order[:k])]
        train_set = [photos[i] for i in sorted(order[k:])]
        test_regions = [(0, q.width) for q in test_set]
        train_regions = [(0, q.width) for q in train_set]
    available = sum(n_grid(q, lo, hi) for q, (lo, hi) in zip(test_set, test_regions))
    if available < test_per_task:
        raise ValueError(
            f"data.test_per_task: domain {name!r} has only {available} held-out patches of side "
            f"{image_size} at stride {stride}, fewer than test_per_task={test_per_task} "
            f"(lower it, or the stride / image_size, or raise data.test_fraction)."
        )
    test = _patches(test_set, test_regions, test_per_task, image_size, stride, rng)
    # A little slack so that dropping train patches equal to test patches still leaves max_train.
    n_train = max_train + max_train // 64 + 1 if max_train else 0
    train = _patches(train_set, train_regions, n_train, image_size, stride, rng)
    train = splits.drop_shared_rows(train, test)
    train = train[:max_train] if max_train else train
    if len(train) == 0:  # keep the trailing shape consistent with test
        train = np.zeros((0,) + test.shape[1:], np.float32)
    return Task(name, train, test)


def skimage_photo(name: str, channels: int) -> Photo:
    import skimage.data  # pylint: disable=import-outside-toplevel

    image = to_float_image(getattr(skimage.data, name)(), channels)
    return Photo(image.shape[0], image.shape[1], lambda: image)


def skimage_tasks(cfg: dict) -> list[Task]:
    for domain in cfg["domains"]:
        if domain not in SKIMAGE_PHOTOS:
            raise ValueError(
                f"data.domains: {domain!r} is not a bundled scikit-image photo; expected one of {SKIMAGE_PHOTOS}."
            )
    return [patch_task_from_config(d, [skimage_photo(d, cfg["channels"])], cfg) for d in cfg["domains"]]


def patch_task_from_config(name: str, photos: list[Photo], cfg: dict) -> Task:
    """`patch_task` with the patch, split and seed fields of a validated image data config."""
    return patch_task(
        name,
        photos,
        image_size=cfg["image_size"],
        stride=cfg["stride"],
        test_fraction=float(cfg["test_fraction"]),
        test_per_task=cfg["test_per_task"],
        max_train=cfg["max_train_per_task"],
        seed=cfg["seed"],
        test_band=cfg["test_band"],
    )
