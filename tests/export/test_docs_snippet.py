"""docs/export.md's greedy sampling, run as written (with a prompt in the test model's vocabulary): it continues
the prompt exactly as `lstm-lm sample --temperature 0` does."""

from __future__ import annotations

import re

import pytest
import torch

from lstm_lm.evaluate.generate import generate
from lstm_lm.export.command import export_run
from lstm_lm.rundir.run_files import load_run
from tests.conftest import REPO

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def snippet() -> str:
    page = (REPO / "docs/export.md").read_text(encoding="utf-8")
    section = page.split("## Greedy sampling", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    return code


def test_the_snippet_is_about_a_dozen_lines_of_plain_python():
    code = snippet()
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 20
    imported = set(re.findall(r"^(?:import|from) (\w+)", code, re.MULTILINE))
    assert imported == {"json", "numpy", "onnxruntime"}


@pytest.mark.parametrize("name", ["written lstm, adaptive", "fused lstm, adaptive, tied, by layer"])
def test_the_snippet_samples_what_lstm_lm_samples(name, trained_run, tmp_path, monkeypatch, capsys):
    run_dir = trained_run(name)
    export_run(run_dir, "onnx", tmp_path / "model.onnx")
    code = snippet()
    assert 'prompt = "the flights"' in code
    monkeypatch.chdir(tmp_path)
    program = compile(code.replace('prompt = "the flights"', 'prompt = "k3 w3_0"'), "docs/export.md", "exec")
    exec(program, {})  # noqa: S102 (the page's own code, which is the point)
    printed = capsys.readouterr().out.strip()

    run = load_run(run_dir, torch.device("cpu"))
    ids = list(generate(run.model, run.tokenizer, run.tokenizer.encode("k3 w3_0"), 20, temperature=0))
    assert printed == "k3 w3_0 " + " ".join(run.tokenizer.itos[i] for i in ids)
    assert len(printed.split()) == 22
