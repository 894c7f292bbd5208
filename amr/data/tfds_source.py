"""Image domains from a prepared TFDS dataset, read with `tfds.data_source` (ArrayRecord, no TensorFlow).

Domain mapping:
  * the dataset has builder configs (e.g. domainnet: clipart, infograph, painting,
    quickdraw, real, sketch): domain d is the builder "{tfds_name}/{d}"; train
    examples come from `tfds_train_split`, test examples from `tfds_test_split`
    (or, when that is "", are carved out of the train split);
  * the dataset has no configs: domain d is a split (or a slice such as
    "train[:50%]") of `tfds_name`; the test examples are carved out of it.
Test examples are a seeded sample of `test_per_task` examples; train examples a
seeded sample of `max_train_per_task` (0 = all). Carved test examples are
disjoint by index from the train examples. Images are center-cropped to a
square and resized (PIL bilinear, antialiased) to image_size x image_size.
Nothing is downloaded: the data must already be prepared under `tfds_data_dir`.
"""

from __future__ import annotations

import numpy as np

from amr.data import images, splits
from amr.data.tasks import Task


def _open(tfds, builder: str, split: str, data_dir: str, split_key: str):
    try:
        return tfds.data_source(builder, split=split, data_dir=data_dir, download=False)
    except ValueError as e:
        if "split" in str(e).lower():
            raise ValueError(f"{split_key}: {builder!r} has no split {split!r} ({e}).") from e
        raise ValueError(f"data.tfds_data_dir: cannot read {builder!r} from {data_dir!r} ({e}).") from e
    except Exception as e:  # pylint: disable=broad-except  # not prepared, wrong format, ...
        raise ValueError(
            f"data.tfds_data_dir: {builder!r} split {split!r} is not prepared as ArrayRecord under "
            f"{data_dir!r} ({type(e).__name__}: {e})."
        ) from e


def resize_square(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Any image -> float32 [size, size, channels] in [0, 1]: center square crop, then resize."""
    from PIL import Image  # pylint: disable=import-outside-toplevel

    x = images.to_float_image(
        np.squeeze(image, -1) if np.ndim(image) == 3 and np.shape(image)[-1] == 1 else image, channels
    )
    h, w = x.shape[:2]
    s = min(h, w)
    x = x[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    if s != size:
        x = np.stack(
            [
                np.asarray(
                    Image.fromarray(np.ascontiguousarray(x[..., c])).resize((size, size), Image.Resampling.BILINEAR)
                )
                for c in range(x.shape[-1])
            ],
            axis=-1,
        )
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _read(source, idx: np.ndarray, key: str, size: int, channels: int, where: str) -> np.ndarray:
    out = np.zeros((len(idx), size, size, channels), np.float32)
    for slot in np.argsort(idx, kind="stable"):  # ascending record order reads faster
        example = source[int(idx[slot])]
        if key not in example:
            raise ValueError(f"data.image_key: {where} examples have no feature {key!r} (features: {sorted(example)}).")
        out[slot] = resize_square(np.asarray(example[key]), size, channels)
    return out


def tfds_tasks(cfg: dict) -> list[Task]:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    name, data_dir = cfg["tfds_name"], cfg["tfds_data_dir"]
    try:
        builder_cls = tfds.builder_cls(name)
    except Exception as e:  # pylint: disable=broad-except  # DatasetNotFoundError and friends
        raise ValueError(f"data.tfds_name: unknown TFDS dataset {name!r}.") from e
    configs = tuple(c.name for c in (getattr(builder_cls, "BUILDER_CONFIGS", None) or ()))
    if configs:
        for domain in cfg["domains"]:
            if domain not in configs:
                raise ValueError(f"data.domains: {domain!r} is not a config of {name!r}; expected {configs}.")
    elif not all(isinstance(d, str) and d for d in cfg["domains"]):
        raise ValueError(f"data.domains: split names expected for {name!r}, got {cfg['domains']!r}.")
    n_test, cap = cfg["test_per_task"], cfg["max_train_per_task"]
    tasks = []
    for domain in cfg["domains"]:
        rng = splits.domain_rng(cfg["seed"], "tfds", name, domain)
        if configs:
            builder = f"{name}/{domain}"
            train_split, test_split = cfg["tfds_train_split"], cfg["tfds_test_split"]
        else:
            builder, train_split, test_split = name, domain, ""
        split_key = "data.tfds_train_split" if configs else "data.domains"
        train_src = _open(tfds, builder, train_split, data_dir, split_key)
        if test_split:
            test_src = _open(tfds, builder, test_split, data_dir, "data.tfds_test_split")
            if len(test_src) < n_test:
                raise ValueError(
                    f"data.test_per_task: {builder}[{test_split}] has {len(test_src)} "
                    f"examples < test_per_task={n_test}."
                )
            test_idx = rng.permutation(len(test_src))[:n_test]
            train_idx = splits.shuffle_cap(np.arange(len(train_src)), cap, rng)
        else:
            test_src = train_src
            if len(train_src) <= n_test:
                raise ValueError(
                    f"data.test_per_task: {builder}[{train_split}] has {len(train_src)} "
                    f"examples, so test_per_task={n_test} leaves none to train on."
                )
            perm = rng.permutation(len(train_src))
            test_idx, rest = perm[:n_test], perm[n_test:]
            train_idx = rest[:cap] if cap else rest
        size, ch, key = cfg["image_size"], cfg["channels"], cfg["image_key"]
        test = _read(test_src, test_idx, key, size, ch, f"{builder}[{test_split or train_split}]")
        train = _read(train_src, train_idx, key, size, ch, f"{builder}[{train_split}]")
        tasks.append(Task(domain, splits.drop_shared_rows(train, test), test))
    return tasks
