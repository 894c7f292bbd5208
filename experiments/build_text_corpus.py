"""Rebuilds the fixed text corpus `amr/data/corpus/` from its public sources, deterministically.

    python -m experiments.build_text_corpus            # checks the pinned versions, writes amr/data/corpus/

Sources (all read from a CPython 3.11.7 installation and its site-packages; nothing downloaded):

  docs      CPython 3.11.7 `Lib/pydoc_data/topics.py`: the English prose of the Python docs'
            topics (one document per topic), PSF License Version 2
  stdlib    CPython 3.11.7 `Lib/**/*.py`, without site-packages, test dirs, __pycache__ and
            pydoc_data, PSF License Version 2
  headers   CPython 3.11.7 `Include/**/*.h` (the installed `include/python3.11`), PSF License Version 2
  licenses  METADATA (the package's description) and licence / notice / authors files of the
            `*.dist-info` of the fixed package list `LICENSE_PACKAGES` below (the packages amr
            requires at run time, plus pillow) at the pinned versions; each package's licence is
            recorded in the manifest and the README

Rules, the same for every domain: candidate files are listed in sorted order (the file rules of
`amr.data.python_text`, which reads the same sources live); each document is cut to its first
`DOC_CAP` bytes; empty documents and exact duplicates of an earlier document (by sorted name)
are dropped; the rest are taken in the order of sha256(name) (a fixed, well-spread order that
does not depend on the machine) until the domain holds `DOMAIN_CAP` bytes, the last one cut to
fit. Each domain is written as `<domain>.tar.xz` (`amr.data.snapshot.pack`: sorted members,
fixed metadata, xz preset 9), with `manifest.json` (sha256 and size of every file, sha256 of
each tar, sources, licences) and `README.md`. The same sources give the same bytes.

Size: the largest shipped configs using the corpus (configs/quickstart.py, configs/text_domains.py:
seq_len 128, 4096 train and 256 held-out windows a domain) read 256 * 128 = 32,768 held-out bytes
and at most (4096 + 4096 // 64 + 1) * 128 = 532,608 train bytes (`amr.data.splits`), 565,376 a
domain. `DOMAIN_CAP` = 704 KiB leaves a fixed 1.25x margin (rounded up to 64 KiB) for documents
cut at the held-out boundary and duplicates skipped; `docs` has only 466,117 bytes in all and is
taken whole but for the topic `else`, whose text is that of `if` (465,517 bytes, 78 topics).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import email.parser
import hashlib
import json
import lzma
import os
import platform
import sys
import sysconfig

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # amr from a checkout

from amr.data import python_text, snapshot  # noqa: E402

PYTHON = "3.11.7"  # the CPython release whose docs, stdlib and headers the snapshot holds
NEEDED = 256 * 128 + (4096 + 4096 // 64 + 1) * 128  # bytes a domain of the largest shipped config reads
DOMAIN_CAP = 704 * 1024  # >= 1.25 * NEEDED, rounded up to 64 KiB
DOC_CAP = 64 * 1024  # bytes kept of each document
PSF = "PSF-2.0 (Python Software Foundation License Version 2)"
# (dist-info name, version): the run-time requirements of amr's setup.py when the snapshot was built, plus pillow.
LICENSE_PACKAGES = (
    ("absl_py", "2.5.1"),
    ("array_record", "0.8.6"),
    ("chex", "0.1.92"),
    ("flax", "0.12.8"),
    ("grain", "0.2.18"),
    ("jax", "0.10.2"),
    ("jaxlib", "0.10.2"),
    ("matplotlib", "3.11.2"),
    ("ml_collections", "1.1.0"),
    ("numpy", "2.4.6"),
    ("optax", "0.2.8"),
    ("orbax_checkpoint", "0.12.8"),
    ("pillow", "13.0.0"),
    ("scikit_image", "0.26.0"),
    ("scikit_learn", "1.9.1"),
    ("scipy", "1.17.1"),
    ("tensorboardx", "2.6.5"),
    ("tensorflow_datasets", "4.9.10"),
    ("tqdm", "4.70.1"),
)


@dataclasses.dataclass(frozen=True)
class Sources:
    """Where the four domains are read from."""

    topics_file: str  # Lib/pydoc_data/topics.py
    stdlib: str  # Lib/
    include: str  # Include/ (installed as include/python3.X)
    site_packages: str  # holds the <name>-<version>.dist-info directories

    @classmethod
    def this_python(cls) -> Sources:
        stdlib = sysconfig.get_path("stdlib")
        return cls(
            os.path.join(stdlib, "pydoc_data", "topics.py"),
            stdlib,
            sysconfig.get_path("include"),
            sysconfig.get_path("purelib"),
        )


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _files(root: str, prefix: str, keep) -> dict[str, bytes]:
    return {prefix + os.path.relpath(p, root).replace(os.sep, "/"): _read(p) for p in python_text.walk(root, keep)}


def docs_documents(topics_file: str) -> dict[str, bytes]:
    """The `topics = {...}` dict literal of pydoc_data/topics.py, read without importing it."""
    tree = ast.parse(_read(topics_file))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "topics" for t in node.targets):
            return {f"topics/{k}": v.encode("utf-8") for k, v in ast.literal_eval(node.value).items()}
    raise ValueError(f"{topics_file}: no `topics = {{...}}` assignment")


def _dist_info(site: str, name: str, version: str) -> str:
    path = os.path.join(site, f"{name}-{version}.dist-info")
    if not os.path.isdir(path):
        found = sorted(e for e in os.listdir(site) if e.startswith(name + "-") and e.endswith(".dist-info"))
        raise ValueError(
            f"licenses: {name} {version} is not installed in {site} (found {found or 'none'}); the snapshot pins "
            f"this version: install it (pip install '{name}=={version}') to rebuild the same bytes"
        )
    return path


def package_license(metadata: bytes) -> str:
    """A package's licence from its METADATA: License-Expression, a short License field, or its classifiers."""
    msg = email.parser.Parser().parsestr(metadata.decode("utf-8", "replace"), headersonly=True)
    if msg.get("License-Expression"):
        return str(msg["License-Expression"]).strip()
    short = str(msg.get("License") or "").strip()
    if short and "\n" not in short and len(short) <= 80:
        return short
    classifiers = [str(c).split("::")[-1].strip() for c in msg.get_all("Classifier") or []]
    classifiers = [
        c for c, full in zip(classifiers, msg.get_all("Classifier") or []) if str(full).startswith("License ::")
    ]
    if classifiers:
        return " / ".join(classifiers)
    head = [line.strip() for line in short.splitlines() if line.strip()][:2]  # a licence text: its title lines
    return ", ".join(head) + " (text in METADATA)" if head else "see its licence files"


def license_documents(site: str, packages) -> tuple[dict[str, bytes], list[dict[str, str]]]:
    docs, table = {}, []
    for name, version in packages:
        root = _dist_info(site, name, version)
        files = _files(root, os.path.basename(root) + "/", python_text.is_license_file)
        docs.update(files)
        meta = os.path.join(root, "METADATA")
        table.append({"name": name, "version": version, "license": package_license(_read(meta))})
    return docs, table


def select(documents: dict[str, bytes], domain_cap: int = DOMAIN_CAP, doc_cap: int = DOC_CAP) -> dict[str, bytes]:
    """The documents kept by the rules of the module docstring."""
    seen, unique = set(), {}
    for name in sorted(documents):
        data = documents[name][:doc_cap]
        digest = hashlib.sha256(data).digest()
        if data and digest not in seen:
            seen.add(digest)
            unique[name] = data
    out, total = {}, 0
    for name in sorted(unique, key=lambda n: (hashlib.sha256(n.encode("utf-8")).hexdigest(), n)):
        if total >= domain_cap:
            break
        out[name] = unique[name][: domain_cap - total]
        total += len(out[name])
    return out


def collect(sources: Sources, packages) -> tuple[dict[str, dict[str, bytes]], list[dict[str, str]]]:
    """domain -> {document name: bytes} before selection, and the licenses domain's package table."""
    licenses, table = license_documents(sources.site_packages, packages)
    return {
        "docs": docs_documents(sources.topics_file),
        "stdlib": _files(sources.stdlib, "Lib/", lambda _, f: f.endswith(".py")),
        "headers": _files(sources.include, "Include/", lambda _, f: f.endswith(".h")),
        "licenses": licenses,
    }, table


def _descriptions(python: str, packages: list[dict[str, str]]) -> dict[str, tuple[str, str]]:
    names = ", ".join(f"{p['name']} {p['version']}" for p in packages)
    return {
        "docs": (f"CPython {python} Lib/pydoc_data/topics.py (docs topics, one document each)", PSF),
        "stdlib": (f"CPython {python} Lib/**/*.py (no site-packages, test dirs, pydoc_data)", PSF),
        "headers": (f"CPython {python} Include/**/*.h (installed include/python3.x)", PSF),
        "licenses": (
            f"METADATA and licence/notice/authors files of the *.dist-info of: {names}",
            "each package's own licence (manifest 'packages')",
        ),
    }


def build(sources: Sources, out_dir: str, packages=LICENSE_PACKAGES, python: str = PYTHON) -> dict:
    """Writes <domain>.tar.xz, manifest.json and README.md into `out_dir`; returns the manifest."""
    domains, table = collect(sources, packages)
    about = _descriptions(python, table)
    os.makedirs(out_dir, exist_ok=True)
    files = {}
    for domain in python_text.DOMAINS:
        kept = select(domains[domain])
        for p in table if domain == "licenses" else ():
            p["documents"] = sum(n.startswith(f"{p['name']}-{p['version']}.dist-info/") for n in kept)
        raw_tar_xz = snapshot.pack(kept)
        tar = lzma.decompress(raw_tar_xz)
        name = snapshot.archive_name(domain)
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(raw_tar_xz)
        files[name] = {
            "sha256": snapshot.sha256(raw_tar_xz),
            "bytes": len(raw_tar_xz),
            "tar_sha256": snapshot.sha256(tar),
            "domain": domain,
            "documents": len(kept),
            "content_bytes": sum(len(v) for v in kept.values()),
            "source": about[domain][0],
            "license": about[domain][1],
        }
    manifest = {
        "format": snapshot.FORMAT,
        "built_by": "experiments/build_text_corpus.py",
        "python": python,
        "domain_cap_bytes": DOMAIN_CAP,
        "document_cap_bytes": DOC_CAP,
        "files": files,
        "packages": table,
    }
    with open(os.path.join(out_dir, snapshot.MANIFEST), "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(readme(manifest))
    return manifest


def readme(manifest: dict) -> str:
    rows = [
        f"| `{n}` | {e['documents']} | {e['content_bytes']:,} | {e['bytes']:,} | `{e['sha256']}` | {e['source']} | {e['license']} |"
        for n, e in sorted(manifest["files"].items())
    ]
    pkgs = [f"| {p['name']} | {p['version']} | {p['documents']} | {p['license']} |" for p in manifest["packages"]]
    return "\n".join(
        [
            "# The fixed text corpus of the `python_text` source",
            "",
            "<!-- Written by experiments/build_text_corpus.py; do not edit by hand. -->",
            "",
            "The quickstart's four text domains, cut once from a CPython "
            f"{manifest['python']} installation and shipped here so that every machine and Python version trains "
            "on the same bytes. `amr.data.snapshot` checks every file against `manifest.json` (whose own sha256 "
            'is pinned in `amr/data/snapshot.py`) before any data is used; `data.text_source="live"` reads the '
            "running installation instead.",
            "",
            "## Sources, rules and size",
            "",
            "From the docstring of `experiments/build_text_corpus.py`:",
            "",
            "```text",
            (__doc__ or "").strip(),
            "```",
            "",
            "Rebuild (on CPython with the pinned package versions installed): "
            "`python -m experiments.build_text_corpus`, then set `MANIFEST_SHA256` in `amr/data/snapshot.py` "
            "to the printed value.",
            "",
            f"Per domain at most {manifest['domain_cap_bytes']:,} bytes (documents cut to "
            f"{manifest['document_cap_bytes']:,} bytes); see the script's docstring for the rules and the margin.",
            "",
            "| file | documents | bytes of text | bytes (xz) | sha256 | source | licence |",
            "| --- | ---: | ---: | ---: | --- | --- | --- |",
            *rows,
            "",
            "## Packages of the `licenses` domain",
            "",
            "| package | version | documents in the snapshot | licence |",
            "| --- | --- | ---: | --- |",
            *pkgs,
            "",
        ]
    )


def check_versions(packages=LICENSE_PACKAGES, python: str = PYTHON) -> None:
    if platform.python_version() != python:
        raise SystemExit(f"the snapshot holds CPython {python}'s text; this is {platform.python_version()}")
    site = Sources.this_python().site_packages
    for name, version in packages:
        _dist_info(site, name, version)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=snapshot.CORPUS_DIR, help="output directory")
    args = parser.parse_args(argv)
    check_versions()
    manifest = build(Sources.this_python(), args.out)
    for name, e in sorted(manifest["files"].items()):
        print(f"{name}: {e['bytes']:,} bytes, {e['documents']} documents, sha256 {e['sha256']}")
    digest = snapshot.sha256(_read(os.path.join(args.out, snapshot.MANIFEST)))
    same = "matches" if digest == snapshot.MANIFEST_SHA256 else "differs from"
    print(f"manifest sha256 {digest} ({same} amr.data.snapshot.MANIFEST_SHA256)")


if __name__ == "__main__":
    main()
