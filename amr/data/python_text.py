"""Four text domains of Python's own text: by default the fixed snapshot shipped with amr.

`data.text_source="snapshot"` (the default) reads `amr/data/corpus/` (see `snapshot.py` and
`corpus/README.md`): the same bytes on every machine and Python version, checked against
their sha256 manifest. `data.text_source="live"` reads the running Python installation
instead (it follows the Python version and the installed packages):

  docs      the English prose of the Python docs: values of `pydoc_data.topics.topics`
  stdlib    the standard library's .py sources (no site-packages, no test dirs, no pydoc_data)
  headers   the C headers under `sysconfig.get_path("include")`
  licenses  licence / readme / METADATA files of installed packages (`*.dist-info` in site-packages)

A document is one file (one dict entry for `docs`); documents are listed in
sorted order and held out whole (see `splits.split_documents`). The snapshot was cut from
a live read by `experiments/build_text_corpus.py` with the same file rules.
"""

from __future__ import annotations

import functools
import os
import sysconfig
from collections.abc import Callable

from amr.data import snapshot, splits
from amr.data.tasks import Task

DOMAINS = ("docs", "stdlib", "headers", "licenses")
TEXT_SOURCES = ("snapshot", "live")  # data.text_source: the shipped snapshot, or the running installation

_SKIP_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "pydoc_data"})
_LICENSE_MARKERS = ("LICEN", "COPYING", "NOTICE", "AUTHORS", "README", "DESCRIPTION")


def _file_reader(path: str) -> splits.Reader:
    def read(n: int) -> bytes:
        with open(path, "rb") as f:
            return f.read(n)

    return read


def walk(root: str, keep: Callable[[str, str], bool]) -> list[str]:
    """Sorted paths under `root` whose (dir, filename) pass `keep`, pruning `_SKIP_DIRS`."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        out.extend(os.path.join(dirpath, f) for f in filenames if keep(dirpath, f))
    return sorted(out)


def stdlib_paths() -> list[str]:
    return walk(sysconfig.get_path("stdlib"), lambda _, f: f.endswith(".py"))


def header_paths() -> list[str]:
    return walk(sysconfig.get_path("include"), lambda _, f: f.endswith(".h"))


def is_license_file(dirpath: str, filename: str) -> bool:
    if filename.endswith((".json", ".html", ".cdx")):
        return False
    upper = filename.upper()
    return (
        filename == "METADATA"
        or any(m in upper for m in _LICENSE_MARKERS)
        or os.path.basename(dirpath) in ("licenses", "license_files")
    )


def license_paths() -> list[str]:
    sites = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    out = []
    for site in sites:
        if not os.path.isdir(site):
            continue
        for entry in sorted(os.listdir(site)):
            # amr's own distribution is left out: its METADATA carries this project's README,
            # so installing amr (or editing the README) would otherwise change the data.
            if entry.endswith(".dist-info") and not entry.startswith("amr-"):
                out.extend(walk(os.path.join(site, entry), is_license_file))
    return out


def _bytes_reader(data: bytes) -> splits.Reader:
    return lambda n: data if n < 0 else data[:n]


def _docs_readers() -> list[splits.Reader]:
    from pydoc_data import topics  # pylint: disable=import-outside-toplevel

    return [_bytes_reader(topics.topics[k].encode("utf-8")) for k in sorted(topics.topics)]


@functools.cache
def domain_readers(domain: str) -> tuple[splits.Reader, ...]:
    """The documents of one domain read live from this installation, in a deterministic order."""
    if domain == "docs":
        return tuple(_docs_readers())
    paths = {"stdlib": stdlib_paths, "headers": header_paths, "licenses": license_paths}[domain]()
    return tuple(_file_reader(p) for p in paths)


def snapshot_readers(domain: str) -> tuple[splits.Reader, ...]:
    """The documents of one domain from the shipped snapshot (verified against its manifest), sorted by name."""
    return tuple(_bytes_reader(data) for _, data in snapshot.read_domain(domain, snapshot.CORPUS_DIR))


def python_text_tasks(cfg: dict) -> list[Task]:
    for domain in cfg["domains"]:
        if domain not in DOMAINS:
            raise ValueError(f"data.domains: unknown python_text domain {domain!r}; expected {DOMAINS}.")
    source = cfg.get("text_source", "snapshot")
    if source not in TEXT_SOURCES:
        raise ValueError(f"data.text_source: expected one of {TEXT_SOURCES}, got {source!r}.")
    # Every domain's files are checked against the manifest before any split is cut.
    readers = {d: snapshot_readers(d) if source == "snapshot" else domain_readers(d) for d in cfg["domains"]}
    tasks = []
    for domain in cfg["domains"]:
        train, test = splits.split_documents(
            domain, readers[domain], cfg["seq_len"], cfg["test_per_task"], cfg["max_train_per_task"], cfg["seed"]
        )
        tasks.append(Task(domain, train, test))
    return tasks
