"""`lstm-lm import` end to end: the run directory it writes, and the other commands reading it like any run."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from lstm_lm.cli import app
from lstm_lm.data.batches import evaluation_layout
from lstm_lm.rundir.run_files import load_run
from lstm_lm.targets import IGNORE

from .example_model import RNNModel

WORDS = "the cat sat on a mat dog ran to red big".split()


def write_corpus(directory):
    """train/valid/test as the example's data.py reads them; its dictionary is first-seen order over the three."""
    generator = torch.Generator().manual_seed(3)
    directory.mkdir()
    for split, lines in (("train", 40), ("valid", 8), ("test", 9)):
        text = "".join(" ".join(WORDS[int(i)] for i in torch.randint(len(WORDS), (6,), generator=generator)) + "\n"
                       for _ in range(lines))
        (directory / f"{split}.txt").write_text(text, encoding="utf-8")
    return directory


def example_dictionary(directory) -> list[str]:
    words = []
    for split in ("train", "valid", "test"):
        for line in (directory / f"{split}.txt").read_text(encoding="utf-8").splitlines():
            for word in line.split() + ["<eos>"]:
                if word not in words:
                    words.append(word)
    return words


@torch.no_grad()
def originals_perplexity(original: RNNModel, ids: torch.Tensor, boundary: int, batch: int, bptt: int) -> float:
    """The original module's perplexity over the same layout `lstm-lm evaluate` scores: every token once, after
    the boundary token, the state carried from window to window."""
    original.eval()
    inputs, targets = evaluation_layout(ids, batch, boundary)
    hidden = original.init_hidden(inputs.size(1))
    total, count = 0.0, 0
    for start in range(0, inputs.size(0), bptt):
        log_probs, hidden = original(inputs[start:start + bptt], hidden)  # (T·B, V)
        wanted = targets[start:start + bptt].reshape(-1)
        kept = wanted != IGNORE
        total -= float(log_probs[kept].gather(1, wanted[kept].unsqueeze(1)).sum())
        count += int(kept.sum())
    return math.exp(total / count)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_import_then_evaluate_sample_and_score(tmp_path, tied):
    corpus = write_corpus(tmp_path / "corpus")
    vocabulary = example_dictionary(corpus)
    torch.manual_seed(0)
    original = RNNModel("LSTM", len(vocabulary) + 1, 8, 8, nlayers=2, dropout=0.2, tie_weights=tied)
    runner = CliRunner()

    # The example's corpus has no <unk>: our word tokenizer needs one, so the model is one row too wide for it.
    torch.save(original, tmp_path / "wide.pt")
    refused = runner.invoke(app, ["import", str(tmp_path / "wide.pt"), "--corpus", str(corpus),
                                  "--out", str(tmp_path / "refused")])
    assert refused.exit_code == 2 and "rows" in refused.stderr and not (tmp_path / "refused").exists()

    (corpus / "train.txt").write_text((corpus / "train.txt").read_text() + "<unk>\n", encoding="utf-8")
    vocabulary = example_dictionary(corpus)
    assert len(vocabulary) == original.ntoken
    model_file = tmp_path / "model.pt"
    torch.save(original, model_file)
    result = runner.invoke(app, ["import", str(model_file), "--corpus", str(corpus), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "run/run.json").read_text())
    assert info["status"] == "imported" and info["vocab_size"] == len(vocabulary)
    assert info["imported_from"]["format"].startswith("zip") and len(info["imported_from"]["sha256"]) == 64
    run = load_run(tmp_path / "run", torch.device("cpu"))
    assert run.tokenizer.itos == vocabulary  # ids as the example numbered them
    assert run.config.model.tie_weights == tied and run.config.data.path == str(corpus)

    evaluated = runner.invoke(app, ["evaluate", str(tmp_path / "run"), "--split", "test", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    ppl = json.loads(evaluated.stdout.strip().splitlines()[-1])["ppl"]
    test_ids = torch.tensor(run.tokenizer.encode_corpus((corpus / "test.txt").read_text()))
    batch, bptt = run.config.train.eval_batch_size, run.config.train.bptt
    assert ppl == pytest.approx(originals_perplexity(original, test_ids, run.tokenizer.boundary_id, batch, bptt),
                                rel=1e-5)

    sampled = runner.invoke(app, ["sample", str(tmp_path / "run"), "--prompt", "the cat", "--tokens", "5",
                                  "--seed", "1"])
    assert sampled.exit_code == 0 and sampled.stdout.startswith("the cat")

    (tmp_path / "sentences.txt").write_text("the cat sat\nthe zebra ran\n", encoding="utf-8")
    scored = runner.invoke(app, ["surprisal", str(tmp_path / "run"), str(tmp_path / "sentences.txt")])
    assert scored.exit_code == 0, scored.output
    rows = [line.split("\t") for line in scored.stdout.splitlines()[1:]]
    assert [row[2] for row in rows] == ["the", "cat", "sat", "the", "<unk>", "ran"]
    with torch.no_grad():  # the first word's surprisal: the original module's, after <eos>
        log_probs, _ = original.eval()(torch.tensor([[run.tokenizer.boundary_id]]), original.init_hidden(1))
    assert float(rows[0][3]) == pytest.approx(-float(log_probs[0, run.tokenizer.stoi["the"]]) / math.log(2),
                                              abs=1e-4)

    again = runner.invoke(app, ["import", str(model_file), "--corpus", str(corpus), "--out", str(tmp_path / "run")])
    assert again.exit_code == 2 and "already holds a run" in again.stderr
