"""`lstm-lm surprisal`: lm-zoo's TSV, each number checked against a direct forward pass of the model."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from lstm_lm.cli import app
from lstm_lm.rundir.run_files import load_run
from tests.conftest import tiny_config, train_quietly

SENTENCES = ["k3 w3_0 w3_1 w3_2", "k1 w1_0 zzz w1_2 w1_3", "", "k7"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A word-level and a character-level run on the synthetic corpus, a few steps each."""
    from tests.conftest import write_synthetic_corpus
    root = tmp_path_factory.mktemp("surprisal")
    corpus = write_synthetic_corpus(root / "corpus", lines_per_split=(200, 30, 30))
    made = {}
    for kind in ("word", "char"):
        config = tiny_config(corpus, root / "cache", f"tokenizer.kind={kind}", "train.max_steps=20")
        train_quietly(config, root / kind)
        made[kind] = root / kind
    return made


def table(result) -> list[list[str]]:
    assert result.exit_code == 0, result.output
    header, *rows = [line.split("\t") for line in result.stdout.splitlines()]
    return [header, *rows]


@torch.no_grad()
def direct(run_dir, ids: list[int], carried=None) -> tuple[list[float], list[float], object]:
    """Surprisals and entropies in bits of `ids` after <eos>, one token at a time through the whole model."""
    run = load_run(run_dir, torch.device("cpu"))
    model, boundary = run.model, run.tokenizer.boundary_id
    hidden = carried if carried is not None else model.init_hidden(1)
    surprisal, entropy = [], []
    previous = boundary
    for token in ids:
        logits, hidden = model(torch.tensor([[previous]]), hidden)
        log_probs = torch.log_softmax(logits[0, 0].float(), dim=-1)
        surprisal.append(-float(log_probs[token]) / math.log(2))
        entropy.append(-float((log_probs.exp() * log_probs).sum()) / math.log(2))
        previous = token
    logits, hidden = model(torch.tensor([[previous]]), hidden)  # the line's <eos>, read in document context
    return surprisal, entropy, hidden


def test_word_surprisals_are_the_models_with_unk_marked(runs, tmp_path):
    (tmp_path / "in.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["surprisal", str(runs["word"]), str(tmp_path / "in.txt"), "--entropy"])
    header, *rows = table(result)
    assert header == ["sentence_id", "token_id", "token", "surprisal", "entropy"]
    assert [row[:3] for row in rows if row[0] == "2"] == [["2", "1", "k1"], ["2", "2", "w1_0"], ["2", "3", "<unk>"],
                                                          ["2", "4", "w1_2"], ["2", "5", "w1_3"]]
    assert {row[0] for row in rows} == {"1", "2", "4"}  # the blank line 3 gives no rows, and keeps the numbering
    run = load_run(runs["word"], torch.device("cpu"))
    for number, sentence in ((1, SENTENCES[0]), (2, SENTENCES[1]), (4, SENTENCES[3])):
        ids = run.tokenizer.encode(sentence)
        surprisal, entropy, _ = direct(runs["word"], ids)
        got = [row for row in rows if row[0] == str(number)]
        assert [float(row[3]) for row in got] == pytest.approx(surprisal, abs=1e-4)
        assert [float(row[4]) for row in got] == pytest.approx(entropy, abs=1e-4)
    assert "1 of 10 tokens are not in the vocabulary" in result.stderr


def test_document_context_carries_the_state_across_lines(runs, tmp_path):
    lines = [SENTENCES[0], SENTENCES[3]]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = table(CliRunner().invoke(app, ["surprisal", str(runs["word"]), str(tmp_path / "in.txt"),
                                          "--context", "document"]))[1:]
    run = load_run(runs["word"], torch.device("cpu"))
    first, _, carried = direct(runs["word"], run.tokenizer.encode(lines[0]))
    second, _, _ = direct(runs["word"], run.tokenizer.encode(lines[1]), carried)
    fresh, _, _ = direct(runs["word"], run.tokenizer.encode(lines[1]))
    assert [float(row[3]) for row in rows] == pytest.approx(first + second, abs=1e-4)
    assert float(rows[-1][3]) != pytest.approx(fresh[0], abs=1e-4)  # the first line's state mattered


def test_words_sum_a_character_models_pieces_with_the_space_before_each_word(runs, tmp_path):
    (tmp_path / "in.txt").write_text("k3 w3_0\n", encoding="utf-8")
    output = tmp_path / "out.tsv"
    for words in (False, True):
        result = CliRunner().invoke(app, ["surprisal", str(runs["char"]), str(tmp_path / "in.txt"), "-o",
                                          str(output), *(["--words"] if words else [])])
        assert result.exit_code == 0, result.output
        rows = [line.split("\t") for line in output.read_text(encoding="utf-8").splitlines()[1:]]
        if not words:
            per_char = [float(row[3]) for row in rows]
            assert "".join(row[2] for row in rows) == "k3 w3_0"
            run = load_run(runs["char"], torch.device("cpu"))
            assert per_char == pytest.approx(direct(runs["char"], run.tokenizer.encode("k3 w3_0"))[0], abs=1e-4)
        else:
            assert [row[2] for row in rows] == ["k3", "w3_0"]
            assert float(rows[0][3]) == pytest.approx(sum(per_char[:2]), abs=1e-3)  # "k3"
            assert float(rows[1][3]) == pytest.approx(sum(per_char[2:]), abs=1e-3)  # " w3_0": the space goes along


def test_a_word_the_model_has_no_token_for_is_nan(runs, tmp_path):
    (tmp_path / "in.txt").write_text("k3 w3_0 .\n", encoding="utf-8")
    rows = table(CliRunner().invoke(app, ["surprisal", str(runs["word"]), str(tmp_path / "in.txt"), "--words"]))[1:]
    assert [row[2] for row in rows] == ["k3", "w3_0", "."]
    # The synthetic corpus has no "." but the word splitter keeps marks only for corpora that have them.
    assert rows[2][3] == "nan" and math.isfinite(float(rows[1][3]))


def test_bad_input_is_one_line(runs, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["surprisal", str(runs["word"]), str(tmp_path / "none.txt")])
    assert missing.exit_code == 2 and "none.txt: file not found" in missing.stderr
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    empty = runner.invoke(app, ["surprisal", str(runs["word"]), str(tmp_path / "empty.txt")])
    assert empty.exit_code == 2 and "no sentences" in empty.stderr
    (tmp_path / "in.txt").write_text("k3\n", encoding="utf-8")
    context = runner.invoke(app, ["surprisal", str(runs["word"]), str(tmp_path / "in.txt"), "--context", "x",
                                  "-o", str(tmp_path / "out.tsv")])
    assert context.exit_code == 2 and "--context x" in context.stderr and not (tmp_path / "out.tsv").exists()
