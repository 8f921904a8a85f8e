"""The vocabulary of an imported model: a vocab.txt, or the example's Dictionary rebuilt from its corpus, and the
check of its size against the embedding."""

from __future__ import annotations

import pytest
import torch

from lstm_lm.errors import UserError
from lstm_lm.foreign.import_example import import_example
from lstm_lm.foreign.vocabulary import corpus_vocabulary, vocab_file

from .compare import write_vocab
from .example_model import RNNModel


def test_a_vocab_file_gives_ids_by_line(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"<eos>\r\nthe\r\n<unk>\r\ncaf\xc3\xa9")  # Windows line ends, no final newline
    assert vocab_file(path) == ["<eos>", "the", "<unk>", "café"]


@pytest.mark.parametrize("content, problem", [("a\n\nb\n", "vocab.txt:2: an empty line"),
                                              ("a\nb c\n", "vocab.txt:2: 'b c'"),
                                              ("a\nb\na\n", "vocab.txt:3: 'a' again, first on line 1")])
def test_an_ambiguous_vocab_file_names_its_line(tmp_path, content, problem):
    path = tmp_path / "vocab.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=problem):
        vocab_file(path)


def test_the_corpus_vocabulary_is_the_examples_dictionary(tmp_path):
    """Words in first-seen order over train, valid, then test, `<eos>` after every line (an empty one too); lines
    end at \\n, \\r\\n or \\r only, and other Unicode whitespace (here U+2028 and a form feed) separates words."""
    (tmp_path / "train.txt").write_bytes(b"the cat\r\n\r\nsat  on\tthe\n")
    (tmp_path / "valid.txt").write_bytes("mat\u2028rug\rthe end".encode())
    (tmp_path / "test.txt").write_bytes(b"the\x0cfinal cat\n")
    assert corpus_vocabulary(tmp_path) == ["the", "cat", "<eos>", "sat", "on", "mat", "rug", "end", "final"]


def test_a_missing_split_is_named(tmp_path):
    (tmp_path / "train.txt").write_text("a b\n")
    with pytest.raises(UserError, match="valid.txt: file not found"):
        corpus_vocabulary(tmp_path)


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    torch.save(RNNModel("GRU", 10, 4, 4, nlayers=1, dropout=0.0), path)
    return path


@pytest.mark.parametrize("size, which_way", [(9, "9 lines (1 fewer)"), (12, "12 lines (2 more)")])
def test_a_vocabulary_of_another_size_says_which_way_it_is_off(tmp_path, checkpoint, size, which_way):
    vocab = write_vocab(tmp_path / "vocab.txt", size)
    with pytest.raises(UserError) as caught:
        import_example(checkpoint, vocab=vocab)
    assert str(caught.value) == (f"{checkpoint}: the embedding has 10 rows but {vocab} has {which_way}: it is not "
                                 f"the vocabulary the model was trained with")


def test_the_corpus_vocabulary_is_checked_too(tmp_path, checkpoint):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("train.txt", "valid.txt", "test.txt"):
        (corpus / name).write_text("a <unk> b\n")
    with pytest.raises(UserError, match=r"10 rows but the corpus in .*corpus has 4 distinct words \(<eos> included\) "
                                        r"\(6 fewer\)"):
        import_example(checkpoint, corpus=corpus)


def test_the_vocabulary_needs_unk_and_eos(tmp_path, checkpoint):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"w{i}\n" for i in range(9)) + "<eos>\n")
    with pytest.raises(UserError, match="has no <unk>, which lstm-lm's word tokenizer needs"):
        import_example(checkpoint, vocab=vocab)


def test_exactly_one_vocabulary_source(tmp_path, checkpoint):
    with pytest.raises(UserError, match="--vocab VOCAB.txt or --corpus DIR"):
        import_example(checkpoint)
    with pytest.raises(UserError, match="one of the two"):
        import_example(checkpoint, vocab=tmp_path / "v.txt", corpus=tmp_path)
