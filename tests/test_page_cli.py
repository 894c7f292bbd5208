"""experiments/page_cli.py: the pages' shared command line names a bad results file before writing anything."""

import json

import pytest

from experiments import page_cli


def _parse(tmp_path, results):
    return page_cli.parse(
        [f"--results={results}", f"--out={tmp_path / 'PAGE.md'}"], "A page.\n\nMore.", "r.json", "P.md", "sweep"
    )


def test_a_results_file_with_benchmarks_loads(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"benchmarks": {"text": {"strategies": {}}}}))
    args, results = _parse(tmp_path, path)
    assert args.out == str(tmp_path / "PAGE.md") and list(results["benchmarks"]) == ["text"]


@pytest.mark.parametrize("content", [None, {"benchmarks": {}}, {}], ids=["missing", "empty", "no-key"])
def test_a_missing_or_empty_results_file_is_named(tmp_path, capsys, content):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(json.dumps(content))
    with pytest.raises(SystemExit):
        _parse(tmp_path, path)
    err = capsys.readouterr().err
    assert str(path) in err and ("does not exist" in err if content is None else "has no benchmarks" in err)
    assert not (tmp_path / "PAGE.md").exists()
