import json

import pytest

from lstm_lm.config import load_config
from lstm_lm.data.corpus import load_corpus
from lstm_lm.data.tokenizers import EOS, UNK, fit_tokenizer, tokenizer_from_dict
from lstm_lm.errors import UserError
from tests.conftest import REPO


def corpus_for(tmp_path, *overrides):
    config = load_config(None, [f"data.cache_dir={tmp_path}", *overrides])
    return load_corpus(config.data, config.tokenizer)


def test_ptb_standard_vocabulary_and_counts(tmp_path):
    corpus = corpus_for(tmp_path, f"data.path={REPO / 'data/ptb'}")
    assert corpus.tokenizer.vocab_size == 10_000
    assert (corpus.train.numel(), corpus.valid.numel(), corpus.test.numel()) == (929_589, 73_760, 82_430)


def test_wikitext2_standard_vocabulary_and_counts(tmp_path):
    corpus = corpus_for(tmp_path, f"data.path={REPO / 'data/wikitext-2'}")
    assert corpus.tokenizer.vocab_size == 33_278
    assert (corpus.train.numel(), corpus.valid.numel(), corpus.test.numel()) == (2_088_628, 217_646, 245_569)


def test_word_vocabulary_caps_and_unknowns():
    config = load_config(None, ["tokenizer.max_size=4"]).tokenizer
    tokenizer = fit_tokenizer("a a a b b c\na b d\n", config)
    assert tokenizer.itos == [EOS, UNK, "a", "b"]  # specials, then most frequent first
    assert tokenizer.encode_corpus("a c\nz\n") == [2, 1, 0, 1, 0]
    assert tokenizer.unknown_words("a c z") == ["c", "z"]
    assert tokenizer.decode([2, 3, 0, 3]) == "a b\nb"


def test_word_min_freq_and_lowercase():
    config = load_config(None, ["tokenizer.min_freq=2", "tokenizer.lowercase=true"]).tokenizer
    tokenizer = fit_tokenizer("The the cat\nA dog\n", config)
    assert tokenizer.itos == [EOS, UNK, "the"]
    assert tokenizer.encode("THE Cat") == [2, 1]


@pytest.mark.parametrize("unit, units_per_accented_letter", [("unicode", 1), ("byte", 2)])
def test_char_tokenizer_round_trip_and_unknowns(unit, units_per_accented_letter):
    config = load_config(None, ["tokenizer.kind=char", f"tokenizer.char_unit={unit}"]).tokenizer
    tokenizer = fit_tokenizer("héllo world\n", config)
    assert len(tokenizer.encode("é")) == units_per_accented_letter
    assert tokenizer.decode(tokenizer.encode("héllo world\n")) == "héllo world\n"
    # ö was never seen: each of its units is <unk>, shown as U+FFFD
    assert tokenizer.decode(tokenizer.encode("wörld")) == "w" + "\ufffd" * units_per_accented_letter + "rld"
    assert tokenizer.encode("Z") == [tokenizer.unk_id]
    assert tokenizer.boundary_id == tokenizer.encode("\n")[0]


def test_bpe_tokenizer_trains_round_trips_and_reloads():
    config = load_config(None, ["tokenizer.kind=bpe", "tokenizer.bpe_vocab_size=120"]).tokenizer
    text = "the cat sat on the mat\nthe dog sat on the log\n" * 50
    tokenizer = fit_tokenizer(text, config)
    assert tokenizer.vocab_size <= 120
    ids = tokenizer.encode_corpus("the cat sat\nthe dog\n")
    assert ids.count(tokenizer.boundary_id) == 2
    assert tokenizer.decode(ids) == "the cat sat\nthe dog\n"
    reloaded = tokenizer_from_dict(json.loads(json.dumps(tokenizer.to_dict())), "tokenizer.json")
    assert reloaded.encode_corpus("the cat sat\nthe dog\n") == ids


def test_broken_tokenizer_file_is_a_user_error():
    with pytest.raises(UserError, match="tokenizer.json: not a valid tokenizer file"):
        tokenizer_from_dict({"kind": "word"}, "tokenizer.json")
