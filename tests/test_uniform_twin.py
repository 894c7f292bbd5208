"""The recommended AMR's uniform twin: the same entry under uniform selection, minus the names that configure only
the selection (`fresh`, `steady`, `sources`, `anchored`), which uniform draws never read. The end-to-end test runs both spellings of the
twin and finds them identical; the negative control finds the same names changing an `amr` run."""

import pytest

from amr.runner import experiment, named_variants, sweep, variants
from configs import tiny


def test_the_twin_drops_only_the_bandit_only_names():
    assert named_variants.uniform_twin("amr+tail+fresh+steady") == "uniform+tail"
    assert named_variants.uniform_twin("amr+tail+ewc") == "uniform+tail+ewc"  # a method is kept
    assert named_variants.uniform_twin("amr+steady") == "uniform"
    assert named_variants.RECOMMENDED_TWIN == named_variants.uniform_twin(named_variants.RECOMMENDED_AMR)
    assert named_variants.uniform_twin("amr+tail+fresh+steady+sources+anchored") == "uniform+tail"
    assert all(map(named_variants.configures_only_the_selection, ("fresh", "steady", "sources", "anchored", "rows")))
    assert named_variants.uniform_twin("amr+tail+fresh+steady+sources+anchored+rows") == "uniform+tail"
    assert not named_variants.configures_only_the_selection("tail")  # negative control: the schedule is kept
    assert not named_variants.configures_only_the_selection("probes")  # nor paid probes (they trim new rows)
    with pytest.raises(ValueError, match="'amr' is not a named variant"):
        named_variants.uniform_twin("amr")
    with pytest.raises(ValueError, match="amr\\+tail\\+nosuch"):
        named_variants.uniform_twin("amr+tail+nosuch")


def _loss_matrix(entry, tmp_path):
    c = tiny.get_config()
    c.data.domains = ("docs", "headers", "licenses")  # two past arms at the last task: the bandit has a choice
    c.train.steps_per_task, c.train.eval_every = 8, 8
    v = variants.parse_named(entry, sweep.STRATEGIES)
    out = experiment.train_and_evaluate(sweep.variant_config(c, v), str(tmp_path / entry), progress=False)
    return out["strategies"][v.strategy]["loss_matrix"]


@pytest.mark.slow
def test_bandit_only_names_change_nothing_under_uniform_and_something_under_amr(tmp_path):
    assert _loss_matrix("uniform+tail+fresh+steady+sources+anchored", tmp_path) == _loss_matrix(
        "uniform+tail", tmp_path
    )
    # negative control: under amr the same names change the draws, so the losses
    assert _loss_matrix("amr+tail+fresh+steady", tmp_path) != _loss_matrix("amr+tail", tmp_path)
    # anchored shifts the rewards, which moves the draws only through the chunks drawn after rewards: under `tail`
    # these short tasks replay in one or two chunks, whose few draws the shift does not flip (a run of
    # `amr+tail+fresh+steady+anchored` equals one without `anchored` here), so this control replays in every chunk
    assert _loss_matrix("amr+steady+anchored", tmp_path) != _loss_matrix("amr+steady", tmp_path)
