"""Task streams: `make_tasks(data_config)` -> [Task, ...] in the order of `data.domains`.

Sources (all real data, nothing downloaded at run time):
  python_text      byte windows of Python's own text: the fixed snapshot shipped in amr/data/corpus
                   (default), or the running installation with text_source="live" (python_text.py)
  skimage_patches  patches of scikit-image's bundled photos (images.py)
  digits           class-incremental scikit-learn digits (digits.py)
  digit_styles     domain-incremental scikit-learn digits: all classes, one pixel transform a task
                   (digit_styles.py)
  files            the user's own text or image files, one glob per domain (files.py)
  tfds             a prepared TFDS dataset read with `tfds.data_source` (tfds_source.py)
  mixture          sub-populations: each task a mixture of the fixed text corpus's domains, some
                   recurring in later tasks, others vanishing; per-source held-out sets (mixture.py)

Every config error is a ValueError naming the key (`data.<key>`), raised before
any data is read.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np

SOURCES = ("python_text", "skimage_patches", "digits", "digit_styles", "files", "tfds", "mixture")


@dataclasses.dataclass(frozen=True)
class Task:
    """One task of the stream: its name, a train / held-out split and optional per-source held-out sets.

    Text: int32 [N, L] byte tokens in [0, 255]. Images: float32 [N, H, W, C] in [0, 1].
    `sources` (the `mixture` source; empty elsewhere): source name -> that source's held-out
    rows, for each source the task mixes; a source that recurs in several tasks has the same
    array in each. None of them overlaps any task's train rows.
    `train_groups` (the `mixture` source; None elsewhere): int32 [N_train], each train row's group,
    the index of its source in `sources`' order; `replay.arm_labels = "groups"` makes them arms.
    """

    name: str
    train: np.ndarray  # [N_train, ...]
    test: np.ndarray  # [N_test, ...], same trailing shape, never overlapping train
    sources: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)  # name -> [N_src, ...]
    train_groups: np.ndarray | None = None  # int32 [N_train] in [0, groups) or None: one group

    def __post_init__(self):
        g = self.train_groups
        if g is not None and (
            g.shape != (len(self.train),) or not np.issubdtype(g.dtype, np.integer) or (g.size and g.min() < 0)
        ):
            raise ValueError(
                f"Task {self.name!r}: train_groups must be non-negative ints, one per train row "
                f"({len(self.train)}), got {g.dtype}{g.shape}."
            )
        for what, a in [("test", self.test)] + [(f"sources[{k!r}]", v) for k, v in self.sources.items()]:
            if self.train.shape[1:] != a.shape[1:] or self.train.dtype != a.dtype:
                raise ValueError(
                    f"Task {self.name!r}: train {self.train.dtype}{self.train.shape} and {what} "
                    f"{a.dtype}{a.shape} must share dtype and trailing shape."
                )


def num_groups(task: Task) -> int:
    """How many groups a task's train rows fall in (1 without `train_groups`)."""
    g = task.train_groups
    return 1 if g is None or not g.size else int(g.max()) + 1


def group_labels(task: Task) -> np.ndarray:
    """int32 [N_train]: each train row's group (all 0 without `train_groups`: the task is one group)."""
    if task.train_groups is None:
        return np.zeros((len(task.train),), np.int32)
    return task.train_groups.astype(np.int32, copy=False)


def _common(domains: tuple, max_train: int, test_per_task: int) -> dict[str, Any]:
    return dict(
        seed=0,  # seed of every split / shuffle / subsample (same seed -> same arrays)
        max_train_per_task=max_train,  # cap on train examples per task (seeded subsample); 0 = all
        test_per_task=test_per_task,  # held-out examples per task (exactly this many)
        domains=domains,  # which domains, in the order the tasks arrive
        # True: run seed k builds its own splits / subsamples with data seed `seed + k`
        # (`make_tasks(..., run_seed=k)`), so seed-to-seed spread includes which rows are held out
        resplit_per_seed=False,
    )


def _image_fields() -> dict[str, Any]:
    return dict(
        image_size=16,  # patch side in pixels (images are [image_size, image_size, channels])
        channels=3,  # 3: gray replicated to RGB; 1: RGB converted to luma (ITU-R 601)
        stride=8,  # patch grid stride in pixels (more patches = smaller stride; no flips)
        test_fraction=0.2,  # single-image domains: this fraction of the columns is held out
        # single-image domains: "right" = the right-most columns are held out; "seeded" = a band of
        # columns at a position drawn from the domain's seeded generator (train: both sides of it)
        test_band="right",
    )


def default_data_config(source: str) -> ml_collections.ConfigDict:
    """The defaults of one source; every field is commented. Raises ValueError for an unknown source."""
    if source == "python_text":
        fields = _common(("docs", "stdlib", "headers", "licenses"), 4096, 256)
        fields.update(seq_len=128)  # bytes per example (non-overlapping windows)
        # "snapshot": amr/data/corpus, the same bytes everywhere (sha256-checked); "live": this Python installation
        fields.update(text_source="snapshot")
    elif source == "skimage_patches":
        fields = _common(("camera", "coffee", "hubble_deep_field", "immunohistochemistry", "brick"), 4096, 256)
        fields.update(_image_fields())
    elif source == "digits":
        fields = _common(("0-1", "2-3", "4-5", "6-7", "8-9"), 0, 60)
        fields.update(classes_per_task=2)  # digits classes per task; names are "a-b" (or "a")
    elif source == "digit_styles":  # domains: pixel transforms, amr.data.digit_styles.STYLES
        fields = _common(("upright", "rot90", "inverted", "mirrored", "rot180"), 0, 60)
    elif source == "files":
        fields = _common((), 4096, 256)  # domains: "name=glob" strings or (name, glob) pairs
        fields.update(
            kind="text",  # "text": byte windows; "image": patches (PIL, any format)
            seq_len=128,
        )  # kind="text": bytes per example
        fields.update(_image_fields())  # kind="image": as for skimage_patches
    elif source == "tfds":
        fields = _common(("clipart", "infograph", "painting", "quickdraw", "real", "sketch"), 4096, 256)
        fields.update(
            tfds_name="domainnet",  # TFDS dataset; domain d -> builder f"{tfds_name}/{d}"
            # if it has configs, else d is a split of tfds_name
            tfds_data_dir="~/tensorflow_datasets",  # where the prepared ArrayRecord data lives (must exist)
            tfds_train_split="train",  # config domains: split giving the train examples
            tfds_test_split="test",  # config domains: held-out split; "" = carve from train
            image_key="image",  # feature holding the image
            image_size=32,  # center-cropped to a square, resized to this side
            channels=3,  # 3 = RGB, 1 = luma
        )
    elif source == "mixture":
        # domains: one task each, the "+"-joined sources it mixes in equal parts (text corpus domains)
        fields = _common(("headers+docs", "stdlib+docs", "licenses+docs", "licenses"), 1792, 256)
        fields.update(seq_len=128, text_source="snapshot")  # as for python_text
        fields.update(test_per_source=256)  # held-out windows per source (Task.sources); a task's test
        # set takes test_per_task // (its sources) of each of its sources' held-out windows
    else:
        raise ValueError(f"data.source: unknown source {source!r}; expected one of {SOURCES}.")
    return ml_collections.ConfigDict(dict(source=source, **fields))


_KNOWN_KEYS = frozenset().union(*(default_data_config(s).keys() for s in SOURCES))


def _as_dict(data_config: ml_collections.ConfigDict | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(data_config, (ml_collections.ConfigDict, ml_collections.FrozenConfigDict)):
        return data_config.to_dict()
    return dict(data_config)


def _int(cfg: dict, key: str, lo: int) -> None:
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"data.{key} must be an integer >= {lo}, got {v!r}.")


def resolve_config(data_config: ml_collections.ConfigDict | Mapping[str, Any]) -> dict[str, Any]:
    """The source's defaults overridden by `data_config`, validated (ValueError naming the key)."""
    user = _as_dict(data_config)
    source = user.get("source")
    if source not in SOURCES:
        raise ValueError(f"data.source: unknown source {source!r}; expected one of {SOURCES}.")
    cfg = default_data_config(source).to_dict()
    cfg.update(user)
    if source == "tfds":  # before anything else: nothing can be read without the data
        data_dir = os.path.expanduser(str(cfg["tfds_data_dir"] or ""))
        if not data_dir or not os.path.isdir(data_dir):
            raise ValueError(
                f"data.tfds_data_dir: {cfg['tfds_data_dir']!r} is not an existing directory; prepare "
                f"the dataset there first (tfds build / download_and_prepare), nothing is downloaded here."
            )
        cfg["tfds_data_dir"] = data_dir
    unknown = sorted(set(user) - _KNOWN_KEYS)
    if unknown:
        raise ValueError(f"data.{unknown[0]}: unknown data config key(s) {unknown}.")
    _int(cfg, "seed", 0)
    _int(cfg, "max_train_per_task", 0)
    _int(cfg, "test_per_task", 1)
    domains = cfg["domains"]
    if isinstance(domains, (str, bytes)) or not isinstance(domains, (tuple, list)) or not domains:
        raise ValueError(f"data.domains must be a non-empty tuple, got {domains!r}.")
    cfg["domains"] = tuple(tuple(d) if isinstance(d, list) else d for d in domains)
    if len(set(cfg["domains"])) != len(cfg["domains"]):
        raise ValueError(f"data.domains has duplicates: {cfg['domains']!r}.")
    if not isinstance(cfg["resplit_per_seed"], (bool, np.bool_)):
        raise ValueError(f"data.resplit_per_seed must be True or False, got {cfg['resplit_per_seed']!r}.")
    if source in ("python_text", "mixture") and cfg["text_source"] not in ("snapshot", "live"):
        raise ValueError(f"data.text_source must be 'snapshot' or 'live', got {cfg['text_source']!r}.")
    if source == "mixture":
        _int(cfg, "test_per_source", 1)
    if "seq_len" in cfg and (source in ("python_text", "mixture") or cfg.get("kind") == "text"):
        _int(cfg, "seq_len", 2)
    if "image_size" in cfg and source not in ("python_text", "mixture") and cfg.get("kind", "image") == "image":
        _int(cfg, "image_size", 1)
        if cfg["channels"] not in (1, 3):
            raise ValueError(f"data.channels must be 1 or 3, got {cfg['channels']!r}.")
    if "stride" in cfg and source in ("skimage_patches", "files") and cfg.get("kind", "image") == "image":
        _int(cfg, "stride", 1)
        fraction = cfg["test_fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
            raise ValueError(f"data.test_fraction must be in (0, 1), got {cfg['test_fraction']!r}.")
        if cfg["test_band"] not in ("right", "seeded"):
            raise ValueError(f"data.test_band must be 'right' or 'seeded', got {cfg['test_band']!r}.")
    return cfg


_DISPATCH = {
    "python_text": ("amr.data.python_text", "python_text_tasks"),
    "skimage_patches": ("amr.data.images", "skimage_tasks"),
    "digits": ("amr.data.digits", "digits_tasks"),
    "digit_styles": ("amr.data.digit_styles", "digit_styles_tasks"),
    "files": ("amr.data.files", "files_tasks"),
    "tfds": ("amr.data.tfds_source", "tfds_tasks"),
    "mixture": ("amr.data.mixture", "mixture_tasks"),
}


def make_tasks(
    data_config: ml_collections.ConfigDict | Mapping[str, Any], min_examples: int = 1, run_seed: int | None = None
) -> list[Task]:
    """The task stream of `data_config`, in the order of `data_config.domains`.

    Args:
      data_config: fields of `default_data_config(source)`; missing fields take those defaults.
      min_examples: every task must have at least this many train examples (pass the
        batch size); otherwise a ValueError names the task and `data.max_train_per_task`.
      run_seed: the run's seed; with `data.resplit_per_seed` the splits use data seed
        `data.seed + run_seed` (ignored otherwise, and when None).
    """
    cfg = resolve_config(data_config)
    if isinstance(min_examples, bool) or not isinstance(min_examples, (int, np.integer)) or min_examples < 0:
        raise ValueError(f"min_examples must be an integer >= 0, got {min_examples!r}.")
    if run_seed is not None:
        if isinstance(run_seed, bool) or not isinstance(run_seed, (int, np.integer)) or run_seed < 0:
            raise ValueError(f"run_seed must be an integer >= 0, got {run_seed!r}.")
        if cfg["resplit_per_seed"]:
            cfg["seed"] = int(cfg["seed"]) + int(run_seed)
    module, fn = _DISPATCH[cfg["source"]]
    tasks = getattr(importlib.import_module(module), fn)(cfg)
    for task in tasks:
        if len(task.train) < min_examples:
            raise ValueError(
                f"data.max_train_per_task: task {task.name!r} has {len(task.train)} train examples "
                f"< {min_examples} needed (the batch); raise data.max_train_per_task (0 = all), lower "
                f"data.test_per_task, or use a larger domain."
            )
    return tasks
