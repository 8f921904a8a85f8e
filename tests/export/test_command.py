"""`lstm-lm export` on the command line, and FILE.json's vocabulary for each tokenizer kind (torch only)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lstm_lm.cli import app
from lstm_lm.config import load_config
from lstm_lm.data.tokenizers import fit_tokenizer
from lstm_lm.export.sidecar import tokenizer_entry

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def test_export_writes_the_file_and_its_description(trained_run, tmp_path):
    run_dir = trained_run("coupled, sizes 32 and 24, tied")
    output = tmp_path / "out" / "model.pt"
    result = runner.invoke(app, ["export", str(run_dir), "--format", "torchscript", "-o", str(output)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"wrote {output} (torchscript, ") and lines[0].endswith(f" and {output}.json")
    assert "state h_0 (1, 'batch', 32), c_0 (1, 'batch', 32), h_1 (1, 'batch', 24), c_1 (1, 'batch', 24)" in lines[0]
    assert lines[1].startswith("checked against lstm-lm: log-probabilities and state within ")
    assert float(lines[1].rsplit(" ", 1)[1]) <= 1e-4
    assert sorted(path.name for path in output.parent.iterdir()) == ["model.pt", "model.pt.json"]

    description = json.loads((output.parent / "model.pt.json").read_text(encoding="utf-8"))
    tokenizer = json.loads((run_dir / "tokenizer.json").read_text(encoding="utf-8"))
    assert description["tokenizer"]["vocabulary"] == tokenizer["itos"]
    vocabulary = description["tokenizer"]["vocabulary"]
    assert vocabulary[description["tokenizer"]["boundary_id"]] == "<eos>"
    assert vocabulary[description["tokenizer"]["unk_id"]] == "<unk>"
    assert description["state"] == [
        {"input": "h_0", "output": "h_0_out", "shape": [1, "batch", 32], "dtype": "float32"},
        {"input": "c_0", "output": "c_0_out", "shape": [1, "batch", 32], "dtype": "float32"},
        {"input": "h_1", "output": "h_1_out", "shape": [1, "batch", 24], "dtype": "float32"},
        {"input": "c_1", "output": "c_1_out", "shape": [1, "batch", 24], "dtype": "float32"}]
    assert description["inputs"][0] == {"name": "tokens", "shape": ["time", "batch"], "dtype": "int64"}
    assert description["outputs"][0] == {"name": "log_probs", "shape": ["time", "batch", len(vocabulary)],
                                         "dtype": "float32"}
    assert description["model"]["cell"] == "lstm_coupled" and description["model"]["layer_sizes"] == [32, 24]
    assert description["run"] == {"directory": str(run_dir.resolve()), "weights": "model.pt"}


def test_stacked_layers_of_one_size_share_one_tensor_per_kind(trained_run, tmp_path):
    output = tmp_path / "model.pt"
    result = runner.invoke(app, ["export", str(trained_run("fused lstm, adaptive, tied, by layer")),
                                 "--format", "torchscript", "-o", str(output)])
    assert result.exit_code == 0, result.output
    description = json.loads((tmp_path / "model.pt.json").read_text(encoding="utf-8"))
    assert [(part["input"], part["shape"]) for part in description["state"]] == [
        ("h", [2, "batch", 32]), ("c", [2, "batch", 32])]


def test_user_errors_are_one_line(trained_run, tmp_path):
    run_dir = trained_run("gru")
    cases = [
        (["export", str(run_dir), "--format", "tflite", "-o", str(tmp_path / "m")],
         "error: --format 'tflite': choose one of onnx, torchscript"),
        (["export", str(tmp_path / "missing"), "--format", "onnx", "-o", str(tmp_path / "m")],
         f"error: {tmp_path / 'missing'}: run directory not found"),
        (["export", str(run_dir), "--format", "torchscript", "-o", str(tmp_path)],
         f"error: {tmp_path}: is a directory; give the file to write, e.g. {tmp_path / 'model.torchscript'}"),
    ]
    for arguments, message in cases:
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2, arguments
        assert result.stderr.strip() == message
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_the_vocabulary_of_each_tokenizer_kind(tmp_path):
    text = "the cat sat\nthe dog sat down\n"
    for kind, extra in [("word", []), ("char", []), ("char", ["tokenizer.char_unit=byte"]),
                        ("bpe", ["tokenizer.bpe_vocab_size=40"])]:
        config = load_config(None, [f"tokenizer.kind={kind}", *extra]).tokenizer
        tokenizer = fit_tokenizer(text, config)
        entry = tokenizer_entry(tokenizer)
        vocabulary = entry["vocabulary"]
        assert entry["kind"] == kind and len(vocabulary) == tokenizer.vocab_size
        assert entry["unk_id"] == tokenizer.unk_id and vocabulary[entry["unk_id"]] == "<unk>"
        # Looking each unit up in the list gives the tokenizer's own ids, and the list decodes them back.
        ids = tokenizer.encode("the dog sat")
        if kind == "word":
            assert [vocabulary.index(word) for word in ["the", "dog", "sat"]] == ids
            assert vocabulary[entry["boundary_id"]] == "<eos>"
        elif kind == "char":
            units = list("the dog sat") if entry["unit"] == "unicode" else list(b"the dog sat")
            assert [vocabulary.index(unit) for unit in units] == ids
            assert vocabulary[entry["boundary_id"]] == ("\n" if entry["unit"] == "unicode" else 10)
        else:
            assert vocabulary[entry["boundary_id"]] == "<eos>"
            assert "".join(vocabulary[i] for i in ids).replace("▁", " ").strip() == "the dog sat"
            assert "tokenizer.json" in entry["encoding"]
        assert json.loads(json.dumps(entry)) == entry  # plain JSON


def test_the_help_names_the_formats_and_the_extra():
    result = runner.invoke(app, ["export", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())  # the words, unwrapped
    assert "--format <str> onnx (for onnxruntime; needs pip install -e '.[export]') or torchscript" in text
