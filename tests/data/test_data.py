import pytest
import torch

from lstm_lm.config import load_config
from lstm_lm.data.batches import batchify, bptt_windows, evaluation_layout
from lstm_lm.data.corpus import load_corpus
from lstm_lm.data.splits import read_splits, split_by_fractions
from lstm_lm.errors import UserError
from lstm_lm.targets import IGNORE


def test_batchify_lays_contiguous_text_down_columns():
    ids = torch.arange(14)
    source = batchify(ids, 3)  # 14 // 3 = 4 rows; tokens 12 and 13 are dropped
    assert source.tolist() == [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]


def test_bptt_windows_are_shifted_views_covering_every_row():
    source = batchify(torch.arange(30), 2)  # (15, 2)
    windows = list(bptt_windows(source, 4))
    assert [row for row, _, _ in windows] == [0, 4, 8, 12]
    assert [inputs.size(0) for _, inputs, _ in windows] == [4, 4, 4, 2]  # 14 predictions per column
    for row, inputs, targets in windows:
        assert torch.equal(targets, source[row + 1: row + 1 + inputs.size(0)])
        assert inputs.untyped_storage().data_ptr() == source.untyped_storage().data_ptr()  # a view, no copy
    assert list(bptt_windows(source, 4, start=8))[0][0] == 8


def test_evaluation_layout_predicts_every_token_exactly_once():
    ids = torch.arange(1, 24)  # 23 tokens, boundary id 0 prepended
    inputs, targets = evaluation_layout(ids, 5, boundary_id=0)
    real = targets[targets != IGNORE]
    assert sorted(real.tolist()) == ids.tolist()
    # each real target is the token after its input in the stream [0, 1, 2, ...]
    mask = targets != IGNORE
    assert torch.equal(targets[mask], inputs[mask] + 1)


def test_split_by_fractions_cuts_at_line_ends():
    text = "".join(f"line {i}\n" for i in range(100))
    parts = split_by_fractions(text, 0.1, 0.1)
    assert "".join(parts[s] for s in ("train", "valid", "test")) == text
    assert all(part.endswith("\n") for part in parts.values())
    assert parts["valid"].count("\n") == pytest.approx(10, abs=1)


def test_corpus_cache_is_reused_and_keyed_by_settings(tmp_path, synthetic_corpus):
    messages = []
    config = load_config(None, [f"data.path={synthetic_corpus}", f"data.cache_dir={tmp_path / 'cache'}"])
    first = load_corpus(config.data, config.tokenizer, log=messages.append)
    second = load_corpus(config.data, config.tokenizer, log=messages.append)
    assert "cached in" in messages[0] and "read from cache" in messages[1]
    assert torch.equal(first.train, second.train) and second.tokenizer.itos == first.tokenizer.itos
    as_chars = load_config(None, [f"data.path={synthetic_corpus}", f"data.cache_dir={tmp_path / 'cache'}",
                                  "tokenizer.kind=char"])
    load_corpus(as_chars.data, as_chars.tokenizer, log=messages.append)
    assert "cached in" in messages[2]  # other settings, other entry
    (synthetic_corpus / "valid.txt").write_text("k1 w1_0\n", encoding="utf-8")
    load_corpus(config.data, config.tokenizer, log=messages.append)
    assert "cached in" in messages[3]  # other content, other entry
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 3


def test_missing_and_broken_corpora_name_the_file(tmp_path):
    config = load_config(None, [f"data.path={tmp_path / 'nowhere'}"])
    with pytest.raises(UserError, match="nowhere: corpus not found"):
        load_corpus(config.data, config.tokenizer)
    (tmp_path / "train.txt").write_text("a b\n")
    (tmp_path / "valid.txt").write_text("a b\n")
    config = load_config(None, [f"data.path={tmp_path}", "data.cache=false"])
    with pytest.raises(UserError, match="no test file"):
        load_corpus(config.data, config.tokenizer)
    (tmp_path / "test.txt").write_bytes(b"a \xff b\n")
    with pytest.raises(UserError, match=r"test.txt: not valid utf-8 at byte offset 2"):
        load_corpus(config.data, config.tokenizer)
    (tmp_path / "test.txt").write_text("  \n")
    with pytest.raises(UserError, match="the test split is empty"):
        load_corpus(config.data, config.tokenizer)


def test_read_splits_reads_only_the_splits_asked_for(tmp_path, synthetic_corpus):
    (synthetic_corpus / "train.txt").unlink()
    config = load_config(None, [f"data.path={synthetic_corpus}"]).data
    assert list(read_splits(config, splits=("test",))) == ["test"]
    with pytest.raises(UserError, match="no train file"):
        read_splits(config)
