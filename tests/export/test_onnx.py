"""`lstm-lm export --format onnx`: the file gives lstm-lm's numbers in onnxruntime, with the time and batch sizes
free, the fused layers as ONNX's own recurrent operators and the written cells as loops; a failed export leaves
nothing behind. Skipped where the export extra (onnx, onnxruntime) is not installed."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from lstm_lm.errors import UserError
from lstm_lm.export import check, to_onnx
from lstm_lm.export.command import export_run
from lstm_lm.rundir.run_files import load_run
from tests.conftest import subprocess_env
from tests.export.conftest import MODELS, compare_with_lstm_lm

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


def onnx_step(path):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [tensor.name for tensor in session.get_inputs()]

    def step(tokens, state):
        log_probs, *new_state = session.run(None, dict(zip(names, [tokens, *state], strict=True)))
        return log_probs, new_state

    return step


@pytest.mark.parametrize("name", MODELS)
def test_onnxruntime_gives_lstm_lm_numbers(name, trained_run, tmp_path):
    run_dir = trained_run(name)
    report = export_run(run_dir, "onnx", tmp_path / "model.onnx")
    assert report["max_difference"] is not None and report["max_difference"] <= 1e-4
    description = json.loads((tmp_path / "model.onnx.json").read_text(encoding="utf-8"))
    compare_with_lstm_lm(load_run(run_dir, torch.device("cpu")), description, onnx_step(tmp_path / "model.onnx"))


@pytest.mark.parametrize(("name", "operator"), [("fused lstm", "LSTM"), ("peephole, 2 layers", "Loop"),
                                                ("gru", "GRU"), ("rnn_tanh", "RNN")])
def test_the_graph_has_the_recurrent_operators_and_the_json_names_its_inputs(name, operator, trained_run, tmp_path):
    export_run(trained_run(name), "onnx", tmp_path / "model.onnx")
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    layers = 1 if name == "rnn_tanh" else 2
    assert [node.op_type for node in graph.node].count(operator) == layers
    description = json.loads((tmp_path / "model.onnx.json").read_text(encoding="utf-8"))

    def shapes(values):
        return {value.name: [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]
                for value in values}

    # The JSON's names and shapes are the graph's: "time" and "batch" free, the rest fixed.
    assert shapes(graph.input) == {part["name"]: part["shape"] for part in description["inputs"]}
    assert shapes(graph.output) == {part["name"]: part["shape"] for part in description["outputs"]}


def test_the_file_runs_without_lstm_lm(trained_run, tmp_path):
    """A fresh Python that cannot import lstm_lm or torch runs the file in onnxruntime."""
    run_dir = trained_run("written lstm, adaptive")
    export_run(run_dir, "onnx", tmp_path / "model.onnx")
    program = (
        "import sys; sys.modules['lstm_lm'] = sys.modules['torch'] = None\n"
        "import numpy as np, onnxruntime\n"
        "session = onnxruntime.InferenceSession(sys.argv[1])\n"
        "zeros = np.zeros((1, 1, 32), np.float32)\n"
        "log_probs, h, c = session.run(None, {'tokens': np.array([[0], [3], [4]]), 'h': zeros, 'c': zeros})\n"
        "print(' '.join(f'{x:.6f}' for x in log_probs[-1, 0]))\n")
    env = {key: value for key, value in subprocess_env().items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", program, str(tmp_path / "model.onnx")], capture_output=True,
                            text=True, env=env, cwd=tmp_path, check=True)
    run = load_run(run_dir, torch.device("cpu"))
    with torch.no_grad():
        logits, _ = run.model(torch.tensor([[0], [3], [4]]), run.model.init_hidden(1))
    got = np.array(result.stdout.split(), dtype=np.float64)
    assert np.abs(got - torch.log_softmax(logits[-1, 0], -1).numpy()).max() <= 1e-5


def test_an_export_that_differs_from_lstm_lm_is_not_written(trained_run, tmp_path, monkeypatch):
    """The check runs the file's bytes before anything is written: a graph off by 1e-3 leaves the older export
    and its JSON as they were, and no temporary file."""
    output = tmp_path / "model.onnx"
    output.write_bytes(b"older export")
    (tmp_path / "model.onnx.json").write_text("{}\n")
    real = check.lstm_lm_step

    def off_by_a_little(*args):
        log_probs, state = real(*args)
        return log_probs + 1e-3, state

    monkeypatch.setattr(check, "lstm_lm_step", off_by_a_little)
    with pytest.raises(UserError, match=r"^the exported onnx step function differs from lstm-lm by 0\.001 in a "
                                        r"log-probability or state \(at most 0\.0001 allowed\); not written$"):
        export_run(trained_run("fused lstm"), "onnx", output)
    assert output.read_bytes() == b"older export" and (tmp_path / "model.onnx.json").read_text() == "{}\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.onnx", "model.onnx.json"]


def test_a_model_over_the_protobuf_limit_is_refused_in_one_line(trained_run, tmp_path, monkeypatch):
    monkeypatch.setattr(to_onnx, "PROTOBUF_LIMIT", 1000)  # a real one would take 2 GiB of weights
    with pytest.raises(UserError, match=r"^the weights take 0\.0 GiB, and one ONNX file holds at most 2 GiB; "
                                        r"use --format torchscript$"):
        export_run(trained_run("fused lstm"), "onnx", tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_without_onnxruntime_the_file_is_written_unchecked_and_says_so(trained_run, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lstm_lm.cli import app

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    result = CliRunner().invoke(app, ["export", str(trained_run("gru")), "--format", "onnx",
                                      "-o", str(tmp_path / "model.onnx")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == "not checked against lstm-lm: onnxruntime is not installed"
    monkeypatch.undo()  # the file is the one a checked export writes
    compare_with_lstm_lm(load_run(trained_run("gru"), torch.device("cpu")),
                         json.loads((tmp_path / "model.onnx.json").read_text(encoding="utf-8")),
                         onnx_step(tmp_path / "model.onnx"))
