"""The names of a sweep's run files, shared by the writer, the statistics and the sweep workers."""

import os

from hypothesis import given
from hypothesis import strategies as st

from amr.io import run_files

_entries = st.sampled_from(
    ["none", "uniform", "amr", "mir", "joint"]
)  # a variant keeps its base name in its own workdir


@given(_entries, st.integers(0, 10_000))
def test_run_file_matches_the_collectors_pattern(strategy, seed):
    path = run_files.run_file("/w", strategy, seed)
    assert path == os.path.join("/w", "runs", f"{strategy}_seed{seed}.json")
    assert run_files.RUN_FILE_PATTERN.fullmatch(os.path.basename(path))
    # negative controls: the wall-time file beside it and a checkpoint directory are not run files
    assert not run_files.RUN_FILE_PATTERN.fullmatch(os.path.basename(path + run_files.SECONDS_SUFFIX))
    assert not run_files.RUN_FILE_PATTERN.fullmatch(os.path.basename(run_files.checkpoint_dir("/w", strategy, seed)))
