"""The fixed text corpus that ships with amr (`amr/data/corpus/`), checked against its manifest.

Each domain is one file `<domain>.tar.xz`: an uncompressed tar of the domain's documents
(member name = where the document came from, sorted), compressed with xz. `manifest.json`
records, per file, the sha256 and size of the compressed file and the sha256 of the tar
inside it, and where the documents came from; `MANIFEST_SHA256` pins the manifest itself, so
the code names exactly which bytes it trains on. Loading a domain checks, in this order, the
manifest, the file's size, its sha256 and the tar's sha256, and raises `CorpusError` naming
the file and both digests on any mismatch; nothing is compiled or trained before that.

`experiments/build_text_corpus.py` rebuilds the files (see `amr/data/corpus/README.md`).
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import tarfile
from typing import Any

CORPUS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
MANIFEST = "manifest.json"
FORMAT = 1
# sha256 of corpus/manifest.json; experiments/build_text_corpus.py prints the new value after a rebuild.
MANIFEST_SHA256 = "838f352a5b10bb0d1b1a793aec6a8131cf7edb26009da05f083bddecc7730c81"


class CorpusError(ValueError):
    """The shipped corpus does not match its manifest (a damaged, truncated or replaced file)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archive_name(domain: str) -> str:
    return f"{domain}.tar.xz"


def pack(documents: dict[str, bytes]) -> bytes:
    """A tar of `documents` (sorted by name, fixed metadata), xz-compressed: same input, same bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for name in sorted(documents):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(documents[name]), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(documents[name]))
    return lzma.compress(buf.getvalue(), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=9)


def _unpack(raw_tar: bytes, where: str) -> list[tuple[str, bytes]]:
    try:
        with tarfile.open(fileobj=io.BytesIO(raw_tar), mode="r:") as tar:
            out = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]
    except (tarfile.TarError, OSError, AttributeError) as err:
        raise CorpusError(f"{where}: not a readable tar archive ({err})") from None
    return sorted(out)


def load_manifest(corpus_dir: str = CORPUS_DIR, expected_sha256: str | None = MANIFEST_SHA256) -> dict[str, Any]:
    """The parsed manifest; CorpusError naming it when missing, unparsable or not the pinned one."""
    path = os.path.join(corpus_dir, MANIFEST)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise CorpusError(f"{path}: the corpus manifest is missing or unreadable ({err})") from None
    if expected_sha256 is not None and sha256(raw) != expected_sha256:
        raise CorpusError(
            f"{path}: manifest sha256 {sha256(raw)} does not match the pinned "
            f"amr.data.snapshot.MANIFEST_SHA256 {expected_sha256} (a replaced or edited manifest)"
        )
    try:
        manifest = json.loads(raw)
    except ValueError as err:
        raise CorpusError(f"{path}: not valid JSON ({err})") from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or not isinstance(manifest.get("files"), dict)
    ):
        raise CorpusError(f"{path}: expected a format-{FORMAT} manifest with a 'files' table")
    return manifest


def _entry(manifest: dict, name: str, path: str) -> dict[str, Any]:
    entry = manifest["files"].get(name)
    keys = ("sha256", "bytes", "tar_sha256")
    if not isinstance(entry, dict) or any(k not in entry for k in keys):
        raise CorpusError(f"{path}: the manifest has no complete entry ({', '.join(keys)}) for {name!r}")
    return entry


def verified_bytes(path: str, entry: dict[str, Any]) -> bytes:
    """The file's bytes when its size and sha256 match `entry`; else CorpusError naming it and both digests."""
    want = entry["sha256"]
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise CorpusError(f"{path}: corpus file is missing or unreadable ({err}); manifest sha256 {want}") from None
    got = sha256(data)
    if len(data) != entry["bytes"]:
        raise CorpusError(
            f"{path}: {len(data)} bytes, the manifest says {entry['bytes']} (truncated or damaged): "
            f"sha256 {got}, manifest sha256 {want}"
        )
    if got != want:
        raise CorpusError(f"{path}: sha256 {got} does not match the manifest sha256 {want} (a changed file)")
    return data


def read_domain(
    domain: str, corpus_dir: str = CORPUS_DIR, manifest_sha256: str | None = MANIFEST_SHA256
) -> list[tuple[str, bytes]]:
    """The verified documents of one domain as (name, bytes), sorted by name."""
    manifest = load_manifest(corpus_dir, manifest_sha256)
    name = archive_name(domain)
    path = os.path.join(corpus_dir, name)
    entry = _entry(manifest, name, os.path.join(corpus_dir, MANIFEST))
    data = verified_bytes(path, entry)
    try:
        raw_tar = lzma.decompress(data, format=lzma.FORMAT_XZ)
    except lzma.LZMAError as err:
        raise CorpusError(f"{path}: not a complete xz stream ({err}); sha256 {sha256(data)}") from None
    if sha256(raw_tar) != entry["tar_sha256"]:
        raise CorpusError(
            f"{path}: the tar inside has sha256 {sha256(raw_tar)}, the manifest says {entry['tar_sha256']}"
        )
    return _unpack(raw_tar, path)
