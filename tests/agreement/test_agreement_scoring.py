"""Batched scoring equals scoring each sentence alone, for both methods, word and character models, both output
layers; the probe; what each method needs of a pair."""

from pathlib import Path

import pytest
import torch

from lstm_lm.agreement.evaluate import evaluate_suites
from lstm_lm.agreement.items import Item, Suite
from lstm_lm.agreement.pairs import PairEncoder, differing_span
from lstm_lm.agreement.probe import probe
from lstm_lm.agreement.scoring import score_requests
from lstm_lm.config import load_config
from lstm_lm.data.tokenizers import CharTokenizer, WordTokenizer
from lstm_lm.errors import UserError
from lstm_lm.model.language_model import LanguageModel
from lstm_lm.rundir.run_files import LoadedRun
from tests.conftest import needs_cpu_bf16

PAIRS = [  # sentences of many lengths, differing early, late, and in the last word
    ("the dog runs", "the dog run"),
    ("the dogs near the cat run fast", "the dogs near the cat runs fast"),
    ("dogs run", "dogs runs"),
    ("the cat near the dogs behind the cat sleeps", "the cat near the dogs behind the cat sleep"),
    ("the cats that the dog sees sleep", "the cats that the dog sees sleeps"),
    ("the dog sees the cats", "the dog sees the cat"),
]
WORDS = sorted({word for pair in PAIRS for sentence in pair for word in sentence.split()})


def random_model(vocab_size: int, *overrides: str) -> LanguageModel:
    torch.manual_seed(0)
    config = load_config(None, ["model.embedding_size=8", "model.hidden_size=12", "model.num_layers=2",
                                "model.init=default", *overrides])
    return LanguageModel(config.model, vocab_size).eval()


def direct_log_prob(model: LanguageModel, boundary: int, ids: list[int], first_scored: int) -> float:
    """log p(ids[first_scored:] | <eos>, ids[:first_scored]): one sentence alone through the model's forward."""
    inputs = torch.tensor([boundary, *ids[:-1]]).view(-1, 1)  # (T, 1)
    with torch.no_grad():
        logits, _ = model(inputs, model.init_hidden(1))
    log_probs = torch.log_softmax(logits[:, 0].double(), dim=-1)  # (T, V)
    return sum(log_probs[t, ids[t]].item() for t in range(first_scored, len(ids)))


def word_tokenizer() -> WordTokenizer:
    return WordTokenizer(["<eos>", "<unk>", *WORDS], lowercase=False)


def char_tokenizer() -> CharTokenizer:
    return CharTokenizer(["<unk>", *sorted(set(" \n".join(word for word in WORDS)))], "unicode", False)


@pytest.mark.parametrize("make_tokenizer", [word_tokenizer, char_tokenizer])
@pytest.mark.parametrize("model_options", [
    [],
    ["model.softmax=adaptive", "model.adaptive_cutoffs=[6,12]", "model.tie_weights=true"],
    # Layers run one by one (AWD-LSTM's regularizers, per-layer sizes): packed sequences pass through the stack.
    ["model.hidden_sizes=[12, 8]", "model.tie_weights=true", "model.weight_drop=0.5", "model.dropout_input=0.3",
     "model.dropout_hidden=0.3", "model.dropout_output=0.3", "model.dropout_embedding=0.1"],
])
@pytest.mark.parametrize("rows_per_chunk", [3, 1024])  # output-layer chunks that cut across rows, and one chunk
def test_batched_scores_equal_each_sentence_scored_alone(make_tokenizer, model_options, rows_per_chunk,
                                                         monkeypatch):
    monkeypatch.setattr("lstm_lm.agreement.scoring.ROWS_PER_CHUNK", rows_per_chunk)
    tokenizer = make_tokenizer()
    model = random_model(tokenizer.vocab_size, *model_options)
    boundary = tokenizer.boundary_id
    encoder = PairEncoder(tokenizer)
    items = [Item(good, bad, f"test:{i}") for i, (good, bad) in enumerate(PAIRS)]
    for method in ("sentence", "target"):
        requests = [encoder.encode(item, method).request for item in items]
        batched = score_requests(model, boundary, requests, count_prefix=method == "sentence", batch_size=4)
        for (good, bad), scores in zip(PAIRS, batched):
            if method == "sentence":
                expected = [direct_log_prob(model, boundary, tokenizer.encode(text), 0) for text in (good, bad)]
            else:
                start, _, _ = differing_span(good.split(), bad.split())
                prefix = " ".join(good.split()[:start])
                forms = [text.split()[start] for text in (good, bad)]
                expected = [direct_log_prob(model, boundary, tokenizer.encode(f"{prefix} {form}"),
                                            len(tokenizer.encode(prefix))) for form in forms]
            assert scores == pytest.approx(expected, abs=1e-4), (method, good)


def test_a_multi_piece_form_is_the_sum_of_its_pieces():
    tokenizer = char_tokenizer()
    request = PairEncoder(tokenizer).target_request("the dogs", "run", "runs")
    assert request.prefix == tokenizer.encode("the dogs")
    assert request.continuations == (tokenizer.encode(" run"), tokenizer.encode(" runs"))  # the space included


def test_the_target_method_needs_a_one_word_difference():
    encoder = PairEncoder(word_tokenizer())
    with pytest.raises(UserError, match=r"pairs.jsonl:3: --method target needs sentences that differ in one word"):
        encoder.encode(Item("the dog sees the cats", "the cat sees the dog", "pairs.jsonl:3"), "target")
    with pytest.raises(UserError, match=r"pairs.jsonl:4: the two sentences are the same"):
        encoder.encode(Item("the dog runs.", "the dog runs", "pairs.jsonl:4"), "sentence")  # PTB-style: no "."


def test_deciding_words_outside_the_vocabulary_are_reported():
    pair = PairEncoder(word_tokenizer()).encode(Item("the dog barks", "the dog bark", "x:1"), "sentence")
    assert pair.unknown_deciding == ["barks", "bark"]
    other = PairEncoder(word_tokenizer()).encode(Item("a dog runs", "a dog run", "x:2"), "sentence")
    assert other.unknown_deciding == [] and other.unknown == ["a", "a"]


def loaded(model: LanguageModel, tokenizer) -> LoadedRun:
    return LoadedRun(Path("run"), load_config(None), tokenizer, model, {})


def test_skip_oov_leaves_out_pairs_whose_deciding_words_are_unknown():
    tokenizer = word_tokenizer()
    run = loaded(random_model(tokenizer.vocab_size), tokenizer)
    suite = Suite("s", "pairs-tsv", [Item("the dog runs", "the dog run", "s:1"),
                                     Item("the dog barks", "the dog bark", "s:2")])
    [kept] = evaluate_suites(run, [suite])
    [skipped] = evaluate_suites(run, [suite], skip_oov=True)
    assert (len(kept.outcomes), kept.oov, kept.oov_words, kept.oov_left_out) == (2, 1, ["bark", "barks"], False)
    assert (len(skipped.outcomes), skipped.oov, skipped.oov_left_out) == (1, 1, True)


def test_probe_ranks_candidates_by_their_log_probability():
    tokenizer = word_tokenizer()
    model = random_model(tokenizer.vocab_size)
    ranked, unknown = probe(loaded(model, tokenizer), "the dogs near the cat", ["runs", "run", "sleeps", "barks"])
    prefix = tokenizer.encode("the dogs near the cat")
    expected = {word: direct_log_prob(model, tokenizer.boundary_id, prefix + tokenizer.encode(word), len(prefix))
                for word in ("runs", "run", "sleeps", "barks")}
    assert [word for word, _ in ranked] == sorted(expected, key=expected.get, reverse=True)
    assert dict(ranked) == pytest.approx(expected, abs=1e-4)
    assert unknown == ["barks"]  # read as <unk>, and said so


@needs_cpu_bf16
def test_bf16_scoring_stays_close_to_fp32():
    tokenizer = word_tokenizer()
    run = loaded(random_model(tokenizer.vocab_size), tokenizer)
    suite = Suite("s", "pairs-tsv", [Item(good, bad, f"s:{i}") for i, (good, bad) in enumerate(PAIRS)])
    [exact] = evaluate_suites(run, [suite])
    [fast] = evaluate_suites(run, [suite], dtype=torch.bfloat16)
    for a, b in zip(exact.outcomes, fast.outcomes):
        # bf16 keeps about 3 significant digits: close, but not the 1e-4 of fp32 (hence fp32 by default)
        assert b.good_score == pytest.approx(a.good_score, rel=0.02)
        assert b.bad_score == pytest.approx(a.bad_score, rel=0.02)
        assert a.good_score != b.good_score  # it did run in bf16
