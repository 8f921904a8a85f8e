"""`lstm-lm export --format torchscript`: the file torch.jit.load reads gives lstm-lm's numbers (torch only: this
runs where the export extra is not installed, as in CI)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from lstm_lm.errors import UserError
from lstm_lm.export.command import export_run
from lstm_lm.export.step_module import StepModule
from lstm_lm.model.cells import ExplicitLSTM
from lstm_lm.rundir.run_files import load_run
from tests.export.conftest import MODELS, compare_with_lstm_lm

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def torchscript_step(path):
    module = torch.jit.load(str(path))

    @torch.no_grad()
    def step(tokens, state):
        log_probs, *new_state = module(torch.from_numpy(tokens), *map(torch.from_numpy, state))
        return log_probs.numpy(), [part.numpy() for part in new_state]

    return step


@pytest.mark.parametrize("name", MODELS)
def test_torchscript_gives_lstm_lm_numbers(name, trained_run, tmp_path):
    run_dir = trained_run(name)
    report = export_run(run_dir, "torchscript", tmp_path / "model.pt")
    assert report["max_difference"] is not None and report["max_difference"] <= 1e-4
    description = json.loads((tmp_path / "model.pt.json").read_text(encoding="utf-8"))
    assert description["format"] == "torchscript" and description["file"] == "model.pt"
    compare_with_lstm_lm(load_run(run_dir, torch.device("cpu")), description, torchscript_step(tmp_path / "model.pt"))


def test_the_caller_s_model_is_left_as_it_was(trained_run):
    run = load_run(trained_run("written lstm, adaptive"), torch.device("cpu"))
    StepModule(run.model)
    assert type(run.model.rnn) is ExplicitLSTM


def test_a_cell_without_a_scripted_loop_is_refused_in_one_line(trained_run, tmp_path):
    class Unknown(ExplicitLSTM):
        pass

    run = load_run(trained_run("written lstm, adaptive"), torch.device("cpu"))
    run.model.rnn.__class__ = Unknown
    with pytest.raises(UserError) as error:
        StepModule(run.model)
    assert str(error.value) == ("cannot export the Unknown cell: lstm_lm/export/step_module.py has no scripted time "
                                "loop for its step")


def test_onnx_without_the_onnx_package_says_how_to_install_it(trained_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as where only .[test] is installed
    with pytest.raises(UserError, match=r"^--format onnx needs the onnx package, which is not installed: "
                                        r"pip install -e '\.\[export\]'$"):
        export_run(trained_run("fused lstm"), "onnx", tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_file_runs_without_lstm_lm(trained_run, tmp_path):
    """A fresh Python that cannot import lstm_lm loads the file and gives the same log-probabilities."""
    import subprocess

    from tests.conftest import subprocess_env

    run_dir = trained_run("peephole, 2 layers")
    export_run(run_dir, "torchscript", tmp_path / "model.pt")
    program = (
        "import sys; sys.modules['lstm_lm'] = None\n"
        "import torch\n"
        "module = torch.jit.load(sys.argv[1])\n"
        "tokens = torch.tensor([[0], [3], [4]])\n"
        "zeros = torch.zeros(2, 1, 32)\n"
        "log_probs, h, c = module(tokens, zeros, zeros)\n"
        "print(' '.join(f'{x:.6f}' for x in log_probs[-1, 0].tolist()))\n")
    env = {key: value for key, value in subprocess_env().items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", program, str(tmp_path / "model.pt")], capture_output=True,
                            text=True, env=env, cwd=tmp_path, check=True)
    got = np.array(result.stdout.split(), dtype=np.float64)
    run = load_run(run_dir, torch.device("cpu"))
    with torch.no_grad():
        logits, _ = run.model(torch.tensor([[0], [3], [4]]), run.model.init_hidden(1))
    assert np.abs(got - torch.log_softmax(logits[-1, 0], -1).numpy()).max() <= 1e-5
