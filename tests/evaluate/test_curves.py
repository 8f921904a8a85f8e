import pytest
from typer.testing import CliRunner

from lstm_lm.cli import app
from tests.conftest import tiny_config, train_quietly

runner = CliRunner()


def test_plot_draws_several_runs(tmp_path, synthetic_corpus):
    for name, lr in (("fast", "0.02"), ("slow", "0.005")):
        train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", f"train.lr={lr}"), tmp_path / name)
    result = runner.invoke(app, ["plot", str(tmp_path / "fast"), str(tmp_path / "slow"), "-o",
                                 str(tmp_path / "curves.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("output, message", [("curves.png", "metrics.jsonl: no training or validation records"),
                                             ("curves.gif", "curves.gif: cannot tell the image type; end the name in .png, .pdf or .svg")])
def test_plot_errors_name_the_file(tmp_path, output, message):
    result = runner.invoke(app, ["plot", str(tmp_path), "-o", str(tmp_path / output)])
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / output).exists()
