"""The user's own corpora: one glob per domain, text files as byte windows or images as patches.

`data.domains` holds "name=glob" strings or (name, glob) pairs, e.g.
("papers=~/corpus/papers/**/*.txt", "code=~/src/**/*.py"). Globs expand `~`
and `**`; matches are sorted. kind="text" splits like python_text (whole files
held out, see splits.split_documents); kind="image" opens any format PIL reads
(first frame, EXIF orientation applied) and cuts patches like skimage_patches
(whole files held out when a domain has several, else a column split).
"""

from __future__ import annotations

import glob
import os

import numpy as np

from amr.data import images, splits
from amr.data.tasks import Task

_EXIF_ORIENTATION = 0x0112


def parse_domains(domains) -> list[tuple[str, str]]:
    """[(name, glob), ...] from "name=glob" strings or (name, glob) pairs."""
    out = []
    for d in domains:
        if isinstance(d, str) and "=" in d:
            name, pattern = d.split("=", 1)
        elif isinstance(d, (tuple, list)) and len(d) == 2 and all(isinstance(s, str) for s in d):
            name, pattern = d
        else:
            raise ValueError(f"data.domains: expected 'name=glob' or (name, glob), got {d!r}.")
        name, pattern = name.strip(), pattern.strip()
        if not name or not pattern:
            raise ValueError(f"data.domains: empty name or glob in {d!r}.")
        out.append((name, pattern))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"data.domains: duplicate domain names in {names}.")
    return out


def expand(pattern: str) -> list[str]:
    """Sorted regular files matching `pattern`; ValueError naming data.domains if none."""
    paths = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p))
    if not paths:
        raise ValueError(f"data.domains: the glob {pattern!r} matches no file.")
    return paths


def _reader(path: str) -> splits.Reader:
    def read(n: int) -> bytes:
        with open(path, "rb") as f:
            return f.read(n)

    return read


def _pil_array(img) -> np.ndarray:
    from PIL import ImageOps  # pylint: disable=import-outside-toplevel

    img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16)
    if img.mode == "I":
        return np.clip(np.asarray(img), 0, 65535).astype(np.uint16)
    if img.mode == "F":
        return np.asarray(img, np.float32)
    if img.mode not in ("1", "L", "LA", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
    a = np.asarray(img)
    return a[..., 0] if img.mode == "LA" else a


def image_photo(path: str, channels: int) -> images.Photo:
    """A Photo of one image file; only the header is read here."""
    from PIL import Image, UnidentifiedImageError  # pylint: disable=import-outside-toplevel

    try:
        with Image.open(path) as img:
            width, height = img.size
            if img.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                width, height = height, width
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"data.domains: {path!r} is not an image PIL can read ({e}).") from e

    def load() -> np.ndarray:
        with Image.open(path) as img:
            return images.to_float_image(_pil_array(img), channels)

    return images.Photo(height, width, load)


def files_tasks(cfg: dict) -> list[Task]:
    kind = cfg["kind"]
    if kind not in ("text", "image"):
        raise ValueError(f"data.kind must be 'text' or 'image', got {kind!r}.")
    domains = [(name, expand(pattern)) for name, pattern in parse_domains(cfg["domains"])]
    tasks = []
    for name, paths in domains:
        if kind == "text":
            train, test = splits.split_documents(
                name,
                [_reader(p) for p in paths],
                cfg["seq_len"],
                cfg["test_per_task"],
                cfg["max_train_per_task"],
                cfg["seed"],
            )
            tasks.append(Task(name, train, test))
        else:
            photos = [image_photo(p, cfg["channels"]) for p in paths]
            tasks.append(images.patch_task_from_config(name, photos, cfg))
    return tasks
