"""SyntaxGym suites scored: region surprisals equal the per-token surprisals of a direct forward pass summed over
each region's tokens (word and character models), a final "." the corpus lacks is the model's end of sentence, a
comma it lacks is reported unscorable, predictions hold as their formulas say; a model that learned agreement gets
the suite right; the command line end to end."""

import json
import math
import random
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lstm_lm.agreement.formats import detect_format, read_suites
from lstm_lm.agreement.scoring import token_log_probs
from lstm_lm.agreement.syntaxgym_align import EMPTY, EOS, SCORED, UNSCORABLE, RegionAligner
from lstm_lm.agreement.syntaxgym_evaluate import evaluate_gym_suites
from lstm_lm.agreement.syntaxgym_report import circuit, gym_suite_report, gym_summary
from lstm_lm.agreement.syntaxgym_suite import GymSuite, read_suite
from lstm_lm.cli import app
from lstm_lm.config import load_config
from lstm_lm.data.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer
from lstm_lm.model.language_model import LanguageModel
from lstm_lm.rundir.run_files import LoadedRun, load_run
from tests.agreement.test_agreement_learning import NOUNS, PREPOSITIONS, VERBS, write_language
from tests.conftest import tiny_config, train_quietly

runner = CliRunner()
WORDS = ["the", "dogs", "dog", "near", "cat", "cats", "run", "runs", "here"]


def region(number, content):
    return {"region_number": number, "content": content}


def condition(name, *contents):
    return {"condition_name": name, "regions": [region(n, text) for n, text in enumerate(contents, 1)]}


def write_gym(path, name, region_names, predictions, items):
    """items: lists of conditions, numbered from 1."""
    path.write_text(json.dumps({
        "meta": {"name": name, "metric": "sum"},
        "region_meta": {str(n): text for n, text in enumerate(region_names, 1)},
        "predictions": [{"type": "formula", "formula": formula} for formula in predictions],
        "items": [{"item_number": number, "conditions": conditions} for number, conditions in enumerate(items, 1)],
    }, indent=1), encoding="utf-8")
    return path


def agreement_suite(path):
    """Two items; a verb region, a final "." and a second prediction on the end of sentence."""
    items = [[condition("match", "The dogs", "near the cat", "run", "."),
              condition("mismatch", "The dogs", "near the cat", "runs", ".")],
             [condition("match", "The dog", "near the cats", "runs", "here ."),
              condition("mismatch", "The dog", "near the cats", "run", "here .")]]
    return write_gym(path, "tiny_number", ["subject", "pp", "verb", "end"],
                     ["[(3;%match%) < (3;%mismatch%)]", "(4;%match%) + (3;%match%) < (4;%mismatch%) + (3;%mismatch%)"],
                     items)


def comma_suite(path):
    """A comma region the corpus has no token for, and the same sentence without it."""
    items = [[condition("comma", "The dogs", ",", "run", "."), condition("nocomma", "The dogs", "", "run", ".")]]
    return write_gym(path, "tiny_commas", ["subject", "comma", "verb", "end"],
                     ["(3;%comma%) < (3;%nocomma%)", "(1;%comma%) = (1;%nocomma%)"], items)


def random_model(vocab_size):
    torch.manual_seed(0)
    config = load_config(None, ["model.embedding_size=8", "model.hidden_size=12", "model.num_layers=2",
                                "model.init=default"])
    return LanguageModel(config.model, vocab_size).eval()


def loaded(tokenizer):
    return LoadedRun(Path("run"), load_config(None), tokenizer, random_model(tokenizer.vocab_size), {})


def direct_surprisals(model, boundary, ids):
    """Bits of each of ids and then of the boundary after them, one sentence through the model's own forward."""
    inputs = torch.tensor([boundary, *ids]).view(-1, 1)  # (T, 1)
    with torch.no_grad():
        logits, _ = model(inputs, model.init_hidden(1))
    log_probs = torch.log_softmax(logits[:, 0].double(), dim=-1)  # (T, V)
    targets = [*ids, boundary]
    return [-log_probs[t, target].item() / math.log(2) for t, target in enumerate(targets)]


@pytest.mark.parametrize("model_options", [
    [],
    ["model.softmax=adaptive", "model.adaptive_cutoffs=[4,8]", "model.tie_weights=true"],
    ["model.hidden_sizes=[12, 8]", "model.tie_weights=true", "model.weight_drop=0.5", "model.dropout_hidden=0.3"],
])
def test_batched_token_scores_equal_each_sentence_alone(model_options, monkeypatch):
    monkeypatch.setattr("lstm_lm.agreement.scoring.ROWS_PER_CHUNK", 3)  # output-layer chunks across rows
    torch.manual_seed(0)
    config = load_config(None, ["model.embedding_size=8", "model.hidden_size=12", "model.num_layers=2",
                                "model.init=default", *model_options])
    model = LanguageModel(config.model, len(WORDS) + 2).eval()
    sentences = [[2, 3, 4], [5], [], [6, 7, 8, 9, 10, 2, 3], [4, 4]]
    ends = [True, False, True, False, True]
    scored = token_log_probs(model, 0, sentences, ends, batch_size=2)
    for ids, end, found in zip(sentences, ends, scored):
        expected = [-bits * math.log(2) for bits in direct_surprisals(model, 0, ids)]
        assert found == pytest.approx(expected if end else expected[:-1], abs=1e-4)


def test_word_model_region_surprisal_is_the_sum_over_its_words_and_final_period_is_eos(tmp_path):
    tokenizer = WordTokenizer(["<eos>", "<unk>", *WORDS], lowercase=False)  # no "." or ",": PTB-like
    run = loaded(tokenizer)
    [suite] = read_suites([agreement_suite(tmp_path / "tiny.json")])
    [result] = evaluate_gym_suites(run, [suite], batch_size=3)
    sentences = {(1, "match"): "the dogs near the cat run", (1, "mismatch"): "the dogs near the cat runs",
                 (2, "match"): "the dog near the cats runs here", (2, "mismatch"): "the dog near the cats run here"}
    for (item, name), text in sentences.items():
        bits = direct_surprisals(run.model, tokenizer.boundary_id, tokenizer.encode(text))
        words = text.split()
        verb = words.index("run" if "run" in words else "runs")
        scores = result.regions[item, name]
        assert scores[1].surprisal == pytest.approx(sum(bits[:2]), abs=1e-4)  # the dogs
        assert scores[2].surprisal == pytest.approx(sum(bits[2:verb]), abs=1e-4)  # near the cat(s)
        assert scores[3].surprisal == pytest.approx(bits[verb], abs=1e-4)
        if item == 1:  # "." alone, at the end: the model's end of sentence after "run"
            assert scores[4].status == EOS and scores[4].surprisal == pytest.approx(bits[-1], abs=1e-4)
        else:  # "here .": the word is scored, the "." dropped as the corpus drops it
            assert scores[4].status == SCORED and scores[4].surprisal == pytest.approx(bits[-2], abs=1e-4)
    # Each prediction on each item, by hand from the same numbers.
    by_hand = []
    for item in (1, 2):
        match, mismatch = result.regions[item, "match"], result.regions[item, "mismatch"]
        by_hand.append(match[3].surprisal < mismatch[3].surprisal)
        by_hand.append(match[4].surprisal + match[3].surprisal < mismatch[4].surprisal + mismatch[3].surprisal)
    assert [outcome.holds for outcome in result.outcomes] == by_hand
    assert [(outcome.item.number, outcome.prediction.index) for outcome in result.outcomes] == [
        (1, 0), (1, 1), (2, 0), (2, 1)]


def test_char_model_regions_are_character_spans_with_the_joining_space(tmp_path):
    characters = sorted(set(" ".join(WORDS)) | {"\n"})  # no ".", no capitals
    tokenizer = CharTokenizer(["<unk>", *characters], "unicode", False)
    run = loaded(tokenizer)
    [suite] = read_suites([agreement_suite(tmp_path / "tiny.json")])
    [result] = evaluate_gym_suites(run, [suite])
    text = "The dogs near the cat run"  # item 1, match; "T" is outside the vocabulary, read as <unk>
    bits = direct_surprisals(run.model, tokenizer.boundary_id, tokenizer.encode(text))
    scores = result.regions[1, "match"]
    assert scores[1].surprisal == pytest.approx(sum(bits[0:8]), abs=1e-4) and scores[1].unknown == 1  # "The dogs"
    assert scores[2].surprisal == pytest.approx(sum(bits[8:21]), abs=1e-4)  # " near the cat": its space included
    assert scores[3].surprisal == pytest.approx(sum(bits[21:25]), abs=1e-4)  # " run"
    # " ." is <unk> for this model: not read; the region is the newline after "run"
    assert scores[4].status == EOS and scores[4].surprisal == pytest.approx(bits[25], abs=1e-4)
    here = result.regions[2, "match"][4]  # "here ." keeps its word, and the <unk> for "." is summed and counted
    assert (here.status, here.unknown) == (SCORED, 1)


def test_bpe_tokens_go_to_the_region_of_their_first_character(tmp_path):
    config = load_config(None, ["tokenizer.kind=bpe", "tokenizer.bpe_vocab_size=60"])
    tokenizer = BPETokenizer.fit("the dogs near the cat run here\nthe dog near the cats runs\n" * 20, config.tokenizer)
    [suite] = read_suites([comma_suite(tmp_path / "commas.json")])
    sentence = suite.items[0].conditions["comma"]
    aligned = RegionAligner(tokenizer).align(sentence)
    ids, spans = tokenizer.encode_with_spans(sentence.sentence)
    covered = {number: sorted({p for index in region.positions for p in range(*spans[index])})
               for number, region in aligned.regions.items()}
    assert sentence.sentence == "The dogs , run ."
    assert covered[1] == list(range(0, 8))  # "The dogs"
    assert covered[3] == list(range(10, 14))  # " run": the joining space goes with the word after it
    # This BPE has no "T", "," or ".": each is <unk>. The comma is only <unk>: unscorable; the final "." is <eos>.
    assert aligned.regions[1].unknown == 1
    assert aligned.regions[2].status == UNSCORABLE and aligned.regions[4].status == EOS
    assert aligned.ids == ids[:len(aligned.ids)]  # the eos region's own tokens come last, and are not read
    assert len(aligned.ids) < len(ids)


def test_an_unscorable_comma_is_reported_and_predictions_reading_past_it_are_not_scored(tmp_path):
    tokenizer = WordTokenizer(["<eos>", "<unk>", *WORDS], lowercase=False)
    [suite] = read_suites([comma_suite(tmp_path / "commas.json")])
    [result] = evaluate_gym_suites(loaded(tokenizer), [suite])
    comma, nocomma = result.regions[1, "comma"], result.regions[1, "nocomma"]
    assert (comma[2].status, comma[2].surprisal) == (UNSCORABLE, None)
    assert (nocomma[2].status, nocomma[2].surprisal) == (EMPTY, 0.0)
    after, before = result.outcomes
    # The verb after the comma the model never read: the two sentences are one to it, so no verdict.
    assert after.holds is None and after.unscorable == ((2, "comma"),)
    assert before.holds is True and before.unscorable == ()  # region 1 comes before it: the same prefix
    report = gym_suite_report(result)
    assert report["unscorable_regions"] == [{"region": 2, "name": "comma", "condition": "comma", "items": 1}]
    assert [(p["n"], p["correct"], p["not_scored"], p["unscorable"]) for p in report["predictions"]] == [
        (0, 0, 1, 1), (1, 1, 0, 0)]
    assert (report["accuracy"], report["n"], report["not_scored"]) == (None, 0, 1)  # the first prediction's


def test_words_outside_the_vocabulary_are_read_as_unk_and_counted(tmp_path):
    tokenizer = WordTokenizer(["<eos>", "<unk>", *[w for w in WORDS if w != "cat"]], lowercase=False)
    [suite] = read_suites([agreement_suite(tmp_path / "tiny.json")])
    run = loaded(tokenizer)
    [kept] = evaluate_gym_suites(run, [suite])
    assert kept.regions[1, "match"][2].unknown == 1 and kept.regions[2, "match"][2].unknown == 0  # cat, cats
    assert [outcome.reads_unknown for outcome in kept.outcomes] == [False, False, False, False]  # 3, 4 read
    unk_verb = WordTokenizer(["<eos>", "<unk>", *[w for w in WORDS if w != "runs"]], lowercase=False)
    [kept] = evaluate_gym_suites(loaded(unk_verb), [suite])
    [left_out] = evaluate_gym_suites(loaded(unk_verb), [suite], skip_oov=True)
    assert all(outcome.reads_unknown for outcome in kept.outcomes)  # "runs" is in one condition of each item
    assert all(outcome.holds is not None for outcome in kept.outcomes)
    assert all(outcome.holds is None and outcome.left_out for outcome in left_out.outcomes)


def test_syntaxgym_files_are_told_from_pairs_json_by_content(tmp_path):
    gym = agreement_suite(tmp_path / "suite.json")
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"sentence_good": "The dog runs.", "sentence_bad": "The dog run."}) + "\n")
    assert detect_format(gym) == "syntaxgym" and detect_format(pairs) == "pairs-jsonl"
    named = tmp_path / "suite.txt"
    named.write_text(gym.read_text())
    assert detect_format(named) == "syntaxgym"
    suites = read_suites([tmp_path])  # a directory holding both
    assert [type(suite).__name__ for suite in suites] == ["Suite", "GymSuite"]
    assert [suite.name for suite in suites] == ["pairs", "tiny_number"]


def test_circuits_and_the_means_over_suites():
    assert [circuit(name) for name in ("number_orc", "fgd-embed3", "subordination_pp-pp", "center_embed_mod",
                                       "nn-nv-rpl", "mine")] == [
        "Agreement", "Long-Distance Dependencies", "Gross Syntactic State", "Center Embedding", None, None]
    suites = [{"accuracy": 0.5, "circuit": "Agreement", "predictions": [{"not_scored": 0}, {"not_scored": 2}]},
              {"accuracy": 1.0, "circuit": "Agreement", "predictions": [{"not_scored": 0}]},
              {"accuracy": 0.0, "circuit": None, "predictions": [{"not_scored": 0}]},
              {"accuracy": None, "circuit": "Licensing", "predictions": [{"not_scored": 4}]}]
    summary = gym_summary(suites)
    assert (summary["mean_accuracy"], summary["suites_scored"]) == (0.5, 3)
    assert (summary["sg_score"], summary["sg_suites"]) == (0.75, 2)  # the suites in a circuit, scored
    assert summary["circuits"] == [{"circuit": "Agreement", "suites": 2, "accuracy": 0.75}]
    assert summary["not_scored"] == 6  # over every prediction


def learned_suite(path, count=40, seed=3):
    """Agreement across a prepositional phrase whose noun has the other number, in the language the run learned;
    a comma condition the language has no comma for; a final "." it has none for either."""
    rng = random.Random(seed)
    items = []
    for i in range(count):
        number = i % 2
        subject = f"The {rng.choice(NOUNS)[number]}"
        pp = f"{rng.choice(PREPOSITIONS)} the {rng.choice(NOUNS)[1 - number]}"
        verb = rng.choice(VERBS)
        items.append([condition("match", subject, pp, "", verb[number], "."),
                      condition("mismatch", subject, pp, "", verb[1 - number], "."),
                      condition("match_comma", subject, pp, ",", verb[number], ".")])
    return write_gym(path, "learned_number", ["subject", "pp", "comma", "verb", "end"],
                     ["[(4;%match%) < (4;%mismatch%)]", "[(4;%match_comma%) < (4;%mismatch%)]"], items)


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("syntaxgym")
    corpus = write_language(root / "corpus")
    config = tiny_config(corpus, root / "cache", "model.hidden_size=48", "train.batch_size=16", "train.bptt=20",
                         "train.max_steps=400", "train.epochs=50", "train.log_every_steps=100")
    train_quietly(config, root / "run")
    return root / "run", learned_suite(root / "learned_number.json")


def test_a_model_that_learned_agreement_passes_and_an_untrained_one_guesses(learned_run):
    run_dir, path = learned_run
    run = load_run(run_dir, torch.device("cpu"))
    suite = read_suite(path)
    [result] = evaluate_gym_suites(run, [suite])
    agreement = [outcome.holds for outcome in result.outcomes if outcome.prediction.index == 0]
    assert len(agreement) == 40 and sum(agreement) >= 36
    torch.manual_seed(0)
    run.model = LanguageModel(run.config.model, run.tokenizer.vocab_size).eval()  # same shape, untrained
    [guessing] = evaluate_gym_suites(run, [suite])
    assert 8 <= sum(outcome.holds for outcome in guessing.outcomes if outcome.prediction.index == 0) <= 32


def test_command_writes_report_items_and_plot_for_a_syntaxgym_suite(learned_run, tmp_path):
    run_dir, path = learned_run
    report_path, items_path, image = tmp_path / "report.json", tmp_path / "items.jsonl", tmp_path / "gym.png"
    result = runner.invoke(app, ["eval-agreement", str(run_dir), str(path), "--output", str(report_path),
                                 "--items", str(items_path), "--batch-size", "16", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "learned_number #0" in result.stdout and "SyntaxGym: mean accuracy" in result.stdout
    assert "learned_number region 3 (comma) in match_comma (40 items)" in result.stdout
    assert "overall: accuracy" not in result.stdout  # no minimal pairs were given
    report = json.loads(report_path.read_text())
    [suite] = report["suites"]
    first, second = suite["predictions"]
    assert (suite["format"], suite["items"], suite["n"], suite["circuit"]) == ("syntaxgym", 40, 40, None)
    assert first["correct"] >= 36 and suite["accuracy"] == first["correct"] / 40 == first["accuracy"]
    assert (second["n"], second["not_scored"], second["unscorable"]) == (0, 40, 40)  # it reads past the comma
    assert suite["unscorable_regions"] == [{"region": 3, "name": "comma", "condition": "match_comma", "items": 40}]
    assert suite["eos_regions"] == [{"region": 5, "name": "end", "condition": name, "items": 40}
                                    for name in ("match", "match_comma", "mismatch")]
    assert report["syntaxgym"]["mean_accuracy"] == suite["accuracy"] and report["syntaxgym"]["sg_score"] is None
    lines = [json.loads(line) for line in items_path.read_text().splitlines()]
    assert len(lines) == 80  # items x predictions
    assert sum(line["holds"] is True for line in lines if line["prediction"] == 0) == first["correct"]
    assert all(line["holds"] is None and line["unscorable"] == [{"region": 3, "condition": "match_comma"}]
               for line in lines if line["prediction"] == 1)
    line = lines[0]
    assert line["holds"] == (line["surprisal"]["match"]["4"] < line["surprisal"]["mismatch"]["4"])
    assert line["surprisal"]["match_comma"]["3"] is None and line["surprisal"]["match"]["3"] == 0.0
    assert line["eos"] == {"match": [5], "mismatch": [5], "match_comma": [5]}

    drawn = runner.invoke(app, ["eval-agreement", "--plot", str(report_path), str(image)])
    assert drawn.exit_code == 0, drawn.output
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_published_suites_align_for_a_ptb_style_vocabulary():
    """All 34 suites, 3,304 sentences: the final "." of subordination is <eos>, the NP/Z comma unscorable."""
    shipped = Path(__file__).resolve().parents[2] / "data" / "syntaxgym"
    suites = [suite for suite in read_suites([shipped]) if isinstance(suite, GymSuite)]
    words = {word.lower() for suite in suites for item in suite.items for condition in item.conditions.values()
             for word in condition.sentence.split() if word.isalpha()}
    aligner = RegionAligner(WordTokenizer(["<eos>", "<unk>", "N", *sorted(words)], lowercase=False))
    statuses = {}
    for suite in suites:
        for item in suite.items:
            for name, sentence in item.conditions.items():
                for number, aligned in aligner.align(sentence).regions.items():
                    if aligned.status in (EOS, UNSCORABLE):
                        statuses.setdefault((suite.name, suite.region_names[number], aligned.status), set()).add(name)
    assert sum(len(suite.items) * len(suite.items[0].conditions) for suite in suites) == 3304
    assert {key for key in statuses if key[2] == UNSCORABLE} == {
        (name, "Comma", UNSCORABLE) for name in ("npz_ambig", "npz_ambig_mod", "npz_obj", "npz_obj_mod")}
    assert {key for key in statuses if key[2] == EOS} == {
        (name, "Main clause", EOS) for name in ("subordination", "subordination_orc-orc", "subordination_pp-pp",
                                                "subordination_src-src")}
    assert statuses["subordination", "Main clause", EOS] == {"sub_no-matrix", "no-sub_no-matrix"}
