"""The shipped text corpus: it loads and matches its manifest; a flipped byte, a missing or truncated
file and a wrong manifest each raise a CorpusError naming the file and the digests (negative
controls); the build script gives byte-identical output from the same sources."""

import json
import os
import shutil

import numpy as np
import pytest

from amr.data import make_tasks, python_text, snapshot
from amr.runner import config_check
from experiments import build_text_corpus as build

ARCHIVE = "docs.tar.xz"


@pytest.fixture
def corpus_copy(tmp_path):
    path = str(tmp_path / "corpus")
    shutil.copytree(snapshot.CORPUS_DIR, path)
    return path


def _manifest():
    with open(os.path.join(snapshot.CORPUS_DIR, snapshot.MANIFEST), "rb") as f:
        raw = f.read()
    return raw, json.loads(raw)


def test_shipped_snapshot_matches_its_pinned_manifest():
    raw, manifest = _manifest()
    assert snapshot.sha256(raw) == snapshot.MANIFEST_SHA256
    total = 0
    for domain in python_text.DOMAINS:
        entry = manifest["files"][snapshot.archive_name(domain)]
        docs = snapshot.read_domain(domain)
        assert len(docs) == entry["documents"] and [n for n, _ in docs] == sorted(n for n, _ in docs)
        assert sum(len(d) for _, d in docs) == entry["content_bytes"] <= build.DOMAIN_CAP
        total += entry["bytes"]
    assert total < 2 * 2**20  # compressed, well under a few MB
    assert all(p["license"] for p in manifest["packages"])


def test_largest_config_fits_in_the_snapshot():
    from configs import quickstart

    for seed in range(3):
        cfg = quickstart.get_config().data
        cfg.seed = seed
        for task in make_tasks(cfg):
            assert len(task.test) == cfg.test_per_task
            # every domain fills (nearly) all windows: only train windows equal to a held-out one are dropped
            # (licence texts repeat across packages)
            assert 0.95 * cfg.max_train_per_task <= len(task.train) <= cfg.max_train_per_task


def test_quickstart_arrays_are_pinned():
    """The quickstart's exact train/test arrays: any change to the corpus or the splits shows here."""
    from amr.analysis import provenance
    from configs import quickstart

    digests = provenance.data_digests(make_tasks(quickstart.get_config().data))
    assert provenance.fingerprint(digests) == "4aa49e837066b7ea9f29eb50b422b7e0fc3d03e6c7e68828ed7b8063a18e752d"


def test_flipped_byte_names_the_file_and_both_digests(corpus_copy):
    path = os.path.join(corpus_copy, ARCHIVE)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(path, "wb").write(bytes(data))
    want = _manifest()[1]["files"][ARCHIVE]["sha256"]
    with pytest.raises(snapshot.CorpusError, match=rf"docs\.tar\.xz: sha256 {snapshot.sha256(bytes(data))} .*{want}"):
        snapshot.read_domain("docs", corpus_copy)
    snapshot.read_domain("headers", corpus_copy)  # the other files still load


def test_missing_and_truncated_files(corpus_copy):
    path = os.path.join(corpus_copy, ARCHIVE)
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-100])
    with pytest.raises(
        snapshot.CorpusError,
        match=r"docs\.tar\.xz: \d+ bytes, the manifest says \d+ \(truncated.*: sha256 [0-9a-f]{64}, manifest sha256 [0-9a-f]{64}$",
    ):
        snapshot.read_domain("docs", corpus_copy)
    # A truncated file behind a manifest that agrees with it: the xz stream itself is incomplete.
    manifest_path = os.path.join(corpus_copy, snapshot.MANIFEST)
    manifest = json.loads(open(manifest_path).read())
    manifest["files"][ARCHIVE].update(sha256=snapshot.sha256(data[:-100]), bytes=len(data) - 100)
    open(manifest_path, "w").write(json.dumps(manifest))
    with pytest.raises(snapshot.CorpusError, match=r"docs\.tar\.xz: not a complete xz stream"):
        snapshot.read_domain("docs", corpus_copy, manifest_sha256=None)
    os.remove(path)
    with pytest.raises(
        snapshot.CorpusError, match=r"docs\.tar\.xz: corpus file is missing.*manifest sha256 [0-9a-f]{64}"
    ):
        snapshot.read_domain("docs", corpus_copy, manifest_sha256=None)


def test_wrong_manifest(corpus_copy):
    path = os.path.join(corpus_copy, snapshot.MANIFEST)
    manifest = json.loads(open(path, "rb").read())
    manifest["files"][ARCHIVE]["sha256"] = "0" * 64
    raw = json.dumps(manifest).encode()
    open(path, "wb").write(raw)
    with pytest.raises(snapshot.CorpusError, match=rf"manifest\.json: manifest sha256 {snapshot.sha256(raw)} .*pinned"):
        snapshot.read_domain("docs", corpus_copy)
    # Not pinned (as for a rebuilt corpus): the file itself is checked against the wrong digest.
    with pytest.raises(snapshot.CorpusError, match=r"docs\.tar\.xz: sha256 [0-9a-f]{64} does not match .* 0{64}"):
        snapshot.read_domain("docs", corpus_copy, manifest_sha256=None)
    del manifest["files"][ARCHIVE]
    open(path, "w").write(json.dumps(manifest))
    with pytest.raises(snapshot.CorpusError, match=r"no complete entry .* for 'docs\.tar\.xz'"):
        snapshot.read_domain("docs", corpus_copy, manifest_sha256=None)
    open(path, "w").write("{not json")
    with pytest.raises(snapshot.CorpusError, match=r"manifest\.json: not valid JSON"):
        snapshot.read_domain("docs", corpus_copy, manifest_sha256=None)


def test_make_tasks_fails_on_a_damaged_corpus_before_any_split(corpus_copy, monkeypatch):
    path = os.path.join(corpus_copy, "licenses.tar.xz")
    open(path, "ab").write(b"\0")
    monkeypatch.setattr(snapshot, "CORPUS_DIR", corpus_copy)
    calls = []
    monkeypatch.setattr(python_text.splits, "split_documents", lambda *a: calls.append(a))
    with pytest.raises(snapshot.CorpusError, match=r"licenses\.tar\.xz"):
        make_tasks(dict(source="python_text", domains=("docs", "licenses")))
    assert not calls  # every domain is verified before the first split is cut


def test_text_source_live_and_bad_value():
    live = make_tasks(dict(source="python_text", domains=("headers",), text_source="live", max_train_per_task=8))
    assert live[0].train.shape == (8, 128)
    with pytest.raises(ValueError, match=r"data\.text_source"):
        make_tasks(dict(source="python_text", text_source="web"))
    from configs import tiny

    cfg = tiny.get_config()
    cfg.data.text_source = "web"
    with pytest.raises(config_check.ConfigError, match=r"^data\.text_source: expected one of"):
        config_check.validate(cfg, 1)
    cfg.data.text_source = "live"
    config_check.validate(cfg, 1)


# ------------------------------------------------------------------ the build script


def _tiny_sources(root) -> build.Sources:
    """A miniature CPython tree and site-packages, in a scrambled creation order."""
    files = {
        "Lib/pydoc_data/topics.py": "# generated\ntopics = {'while': 'The while statement\\n', 'assert': 'Assert.\\n'}\n",
        "Lib/zlib_like.py": "def f():\n    return 1\n" * 50,
        "Lib/abc_mod.py": "import os\n" * 20,
        "Lib/test/test_x.py": "skipped\n",
        "Lib/copy_of_abc.py": "import os\n" * 20,  # a duplicate: dropped
        "Include/Python.h": "#define PY 1\n" * 30,
        "Include/cpython/object.h": "#ifndef X\n" * 30,
        "site/foo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: foo\nLicense: MIT\n\nFoo does things.\n",
        "site/foo-1.0.dist-info/LICENSE": "MIT License\n" * 40,
        "site/foo-1.0.dist-info/RECORD": "not a licence file\n",
        "site/bar-2.0.dist-info/METADATA": "Name: bar\nClassifier: License :: OSI Approved :: BSD License\n\nBar.\n",
    }
    for rel in sorted(files, reverse=True):
        os.makedirs(os.path.dirname(root / rel), exist_ok=True)
        (root / rel).write_text(files[rel])
    return build.Sources(
        str(root / "Lib/pydoc_data/topics.py"), str(root / "Lib"), str(root / "Include"), str(root / "site")
    )


def test_build_is_deterministic_and_loads(tmp_path):
    sources = _tiny_sources(tmp_path / "src")
    packages = (("foo", "1.0"), ("bar", "2.0"))
    outs = [str(tmp_path / name) for name in ("a", "b")]
    manifests = [build.build(sources, out, packages, python="3.0.0") for out in outs]
    assert manifests[0] == manifests[1]
    assert sorted(os.listdir(outs[0])) == sorted(os.listdir(outs[1]))
    for name in os.listdir(outs[0]):
        assert open(os.path.join(outs[0], name), "rb").read() == open(os.path.join(outs[1], name), "rb").read(), name
    docs = dict(snapshot.read_domain("stdlib", outs[0], manifest_sha256=None))
    assert sorted(docs) == ["Lib/abc_mod.py", "Lib/zlib_like.py"]  # no tests dir, no pydoc_data, no duplicate
    assert dict(snapshot.read_domain("docs", outs[0], manifest_sha256=None))["topics/assert"] == b"Assert.\n"
    licenses = dict(snapshot.read_domain("licenses", outs[0], manifest_sha256=None))
    assert "foo-1.0.dist-info/LICENSE" in licenses and "foo-1.0.dist-info/RECORD" not in licenses
    assert [(p["name"], p["license"]) for p in manifests[0]["packages"]] == [("foo", "MIT"), ("bar", "BSD License")]
    with pytest.raises(ValueError, match=r"foo 9\.9 is not installed .*foo-1\.0\.dist-info"):
        build.build(sources, str(tmp_path / "c"), (("foo", "9.9"),))


def test_select_caps_dedups_and_is_order_free():
    docs = {f"d{i}": bytes([65 + i]) * (100 + i) for i in range(20)}
    docs["copy"] = docs["d3"]
    kept = build.select(docs, domain_cap=1000, doc_cap=150)
    assert sum(map(len, kept.values())) == 1000 and "d3" not in kept  # "copy" sorts first: d3 is the duplicate
    assert len(set(kept.values())) == len(kept)
    assert kept == build.select(dict(reversed(list(docs.items()))), domain_cap=1000, doc_cap=150)
    assert max(map(len, build.select(docs, domain_cap=10**6, doc_cap=50).values())) == 50
    assert np.all([v == docs[k][: len(v)] for k, v in kept.items()])


def test_build_script_reproduces_the_shipped_snapshot(tmp_path):
    """Run where the snapshot was cut (CPython 3.11.7, the pinned packages): the same tars come out."""
    try:
        build.check_versions()
    except (SystemExit, ValueError) as err:
        pytest.skip(f"not the snapshot's sources: {err}")
    manifest = build.build(build.Sources.this_python(), str(tmp_path))
    shipped = _manifest()[1]
    for name, entry in shipped["files"].items():
        assert manifest["files"][name]["tar_sha256"] == entry["tar_sha256"], name
    assert manifest["packages"] == shipped["packages"]
