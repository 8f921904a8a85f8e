"""The neural cache and dynamic evaluation, computed by hand on tiny runs with explicit loops, against what
`lstm-lm evaluate --cache/--dynamic` reports; and the run directory's weights untouched."""

from __future__ import annotations

import copy
import hashlib
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from lstm_lm.cli import app
from lstm_lm.data.batches import batchify, evaluation_layout
from lstm_lm.evaluate import cache as cache_module
from lstm_lm.evaluate.adaptive import CACHE_LAMBDAS, CACHE_THETAS, DYNAMIC_DECAYS, DYNAMIC_LRS
from lstm_lm.evaluate.cache import cache_log_probs, mixed_log_probs, read_stream
from lstm_lm.evaluate.dynamic import EPSILON, TRAIN_COLUMNS, DynamicEvaluator, DynamicSettings, gradient_rms
from lstm_lm.evaluate.perplexity import evaluate_ids, text_ids
from lstm_lm.model.language_model import LanguageModel
from lstm_lm.rundir.run_files import load_run
from tests.conftest import tiny_config, train_quietly, write_synthetic_corpus

runner = CliRunner()
CPU = torch.device("cpu")

# Tied full softmax with the fused LSTM; an untied adaptive softmax on a GRU; characters through the layer stack
# (weight drop, locked dropout between two layers, a projection for tying).
KINDS = {
    "word-lstm-tied": ["model.tie_weights=true"],
    "word-gru-adaptive": ["model.cell=gru", "model.softmax=adaptive", "model.adaptive_cutoffs=[20]"],
    "char-stack": ["tokenizer.kind=char", "model.num_layers=2", "model.hidden_sizes=[24,40]",
                   "model.dropout_hidden=0.1", "model.weight_drop=0.2", "model.tie_weights=true"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("adaptive")
    corpus = write_synthetic_corpus(root / "corpus")
    made = {}
    for kind, overrides in KINDS.items():
        config = tiny_config(corpus, root / "cache", "train.max_steps=40", *overrides)
        train_quietly(config, root / kind)
        made[kind] = root / kind
    return made


def evaluate_json(*arguments: str) -> dict:
    result = runner.invoke(app, ["evaluate", *map(str, arguments), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def whole_stream(model: LanguageModel, ids: torch.Tensor, boundary_id: int | None):
    """log p_model(target) and top-layer outputs of the whole text in one forward call (no windows)."""
    inputs, targets = evaluation_layout(ids, 1, boundary_id)
    with torch.no_grad():
        losses, _, (output, _) = model(inputs, model.init_hidden(1), targets, activations=True)
    return (-losses[:, 0]).tolist(), output[:, 0], targets[:, 0].tolist()


def cache_by_hand(log_probs: list[float], hidden: torch.Tensor, targets: list[int], window: int, theta: float,
                  lam: float, positions) -> list[float]:
    """log p at each of `positions`: (1 − λ) p_model + λ Σ_{i: w_{i+1} = w_{t+1}} softmax_i(θ h_t·h_i) over the
    window i in [t − window, t − 1]; p_model alone at t = 0."""
    result = []
    for t in positions:
        p_model = math.exp(log_probs[t])
        keys = range(max(0, t - window), t)
        if not keys:
            result.append(math.log(p_model))
            continue
        weights = [math.exp(theta * float(hidden[t] @ hidden[i])) for i in keys]
        on_target = sum(w for w, i in zip(weights, keys) if targets[i] == targets[t])
        result.append(math.log((1 - lam) * p_model + lam * on_target / sum(weights)))
    return result


@pytest.mark.parametrize("kind", KINDS)
def test_the_cache_by_hand_matches_the_command(runs, kind, monkeypatch):
    monkeypatch.setattr(cache_module, "ROWS_PER_BLOCK", 64)  # several blocks, windows crossing their edges
    run = load_run(runs[kind], CPU)
    ids, _ = text_ids(run, "valid", None)
    log_probs, hidden, targets = whole_stream(run.model, ids, run.tokenizer.boundary_id)
    window, theta, lam = 50, 0.7, 0.2
    by_hand = cache_by_hand(log_probs, hidden, targets, window, theta, lam, range(len(targets)))

    inputs, expected = evaluation_layout(ids, 1, run.tokenizer.boundary_id)
    stream = read_stream(run.model, inputs, expected, run.config.train.bptt, CPU)
    mixed = mixed_log_probs(stream.log_probs, cache_log_probs(stream.hidden, stream.targets, window, [theta])[0], lam)
    assert mixed.tolist() == pytest.approx(by_hand, rel=1e-5, abs=1e-5)

    report = evaluate_json(runs[kind], "--split", "valid", "--cache", window, "--cache-theta", theta,
                           "--cache-lambda", lam)
    assert report["tokens"] == len(targets)
    assert report["loss"] == pytest.approx(-sum(by_hand) / len(by_hand), rel=1e-5)
    assert report["without_cache"]["loss"] == pytest.approx(-sum(log_probs) / len(log_probs), rel=1e-5)
    assert report["method"] == "cache" and report["chosen"] == {"cache": "given"}
    assert report["settings"] == {"cache_window": window, "cache_theta": theta, "cache_lambda": lam}
    # The synthetic text repeats ten five-word patterns: words seen lately come again, and the cache helps.
    assert report["ppl"] < 0.99 * report["without_cache"]["ppl"]
    if kind.startswith("char"):
        assert report["bpc"] == pytest.approx(report["loss"] / math.log(2))


def test_a_cache_of_weight_zero_gives_the_plain_perplexity_of_one_stream(runs):
    run_dir = runs["word-lstm-tied"]
    report = evaluate_json(run_dir, "--split", "test", "--cache", 30, "--cache-lambda", 0)
    run = load_run(run_dir, CPU)
    ids, _ = text_ids(run, "test", None)
    plain = evaluate_ids(run.model, ids, run.tokenizer.boundary_id, 1, run.config.train.bptt, CPU)
    assert report["loss"] == pytest.approx(plain.loss, rel=1e-12)
    assert report["without_cache"]["loss"] == pytest.approx(plain.loss, rel=1e-12)


def rms_by_hand(model: LanguageModel, train_ids: torch.Tensor, segment: int, tokens: int) -> list[torch.Tensor]:
    """sqrt(mean of squared gradients of each minibatch's mean loss): 100 columns, `segment` rows at a time."""
    model = copy.deepcopy(model)
    source = batchify(train_ids, TRAIN_COLUMNS)
    squares = [torch.zeros_like(p) for p in model.parameters()]
    hidden, batches = model.init_hidden(TRAIN_COLUMNS), 0
    for row in range(0, source.size(0) - 1, segment):
        if batches * TRAIN_COLUMNS * segment >= tokens:
            break
        inputs, targets = source[row: row + segment], source[row + 1: row + 1 + segment]
        model.zero_grad()
        losses, hidden = model(inputs[: len(targets)], hidden, targets)
        losses.mean().backward()
        hidden = tuple(h.detach() for h in hidden)
        for square, p in zip(squares, model.parameters()):
            if p.grad is not None:
                square += p.grad ** 2
        batches += 1
    return [torch.sqrt(square / batches) for square in squares]


def dynamic_by_hand(model: LanguageModel, ids: torch.Tensor, boundary_id: int | None, rms: list[torch.Tensor],
                    lr: float, decay: float, segment: int, segments: int | None = None):
    """Each segment scored with the weights as they are, then θ ← θ − η g / (RMS + ε) + min(λ RMS / mean RMS, 1)
    (θ_trained − θ); returns the log-probabilities scored and the top-layer outputs."""
    model = copy.deepcopy(model)
    trained = [p.detach().clone() for p in model.parameters()]
    mean_rms = sum(float(r.sum()) for r in rms) / sum(r.numel() for r in rms)
    inputs, targets = evaluation_layout(ids, 1, boundary_id)
    hidden, scored, outputs = model.init_hidden(1), [], []
    for index, row in enumerate(range(0, inputs.size(0), segment)):
        if segments is not None and index == segments:
            break
        model.zero_grad()
        losses, hidden, (output, _) = model(inputs[row: row + segment], hidden, targets[row: row + segment],
                                            activations=True)
        scored += (-losses[:, 0]).tolist()
        outputs.append(output[:, 0].detach())
        losses.mean().backward()
        hidden = tuple(h.detach() for h in hidden)
        with torch.no_grad():
            for p, p0, r in zip(model.parameters(), trained, rms):
                rate = torch.clamp(decay * r / mean_rms, max=1.0)
                grad = p.grad if p.grad is not None else torch.zeros_like(p)  # a tail no target fell in
                p.copy_(p - lr * grad / (r + EPSILON) + rate * (p0 - p))
    return scored, torch.cat(outputs), targets[:, 0].tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_dynamic_evaluation_by_hand_matches_the_library_for_three_segments(runs, kind):
    run = load_run(runs[kind], CPU)
    train_ids, _ = text_ids(run, "train", None)
    ids, _ = text_ids(run, "valid", None)
    segment, tokens = 7, 2_000
    rms, read = gradient_rms(run.model, train_ids, segment, tokens, CPU)
    assert read == 2_100  # minibatches of 100 columns × 7 tokens until 2,000 are reached
    for got, want in zip(rms, rms_by_hand(run.model, train_ids, segment, tokens)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-8)
    before = {name: p.clone() for name, p in run.model.state_dict().items()}
    lr, decay = 3e-3, 0.05
    scored, _, _ = dynamic_by_hand(run.model, ids, run.tokenizer.boundary_id, rms, lr, decay, segment, segments=3)
    inputs, targets = evaluation_layout(ids, 1, run.tokenizer.boundary_id)
    stream = DynamicEvaluator(run.model, rms).read(inputs, targets, DynamicSettings(lr, decay, segment), CPU,
                                                   limit=3 * segment)
    assert stream.log_probs.tolist() == pytest.approx(scored, rel=1e-5, abs=1e-6)
    static = read_stream(run.model, inputs[: 3 * segment], targets[: 3 * segment], segment, CPU)
    assert stream.log_probs[:segment].tolist() == pytest.approx(static.log_probs[:segment].tolist(), abs=1e-6)
    assert abs(stream.loss - static.loss) > 1e-4  # the later segments were scored by adapted weights
    after = run.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)  # the weights are put back


@pytest.mark.parametrize("kind", ["word-lstm-tied", "word-gru-adaptive"])
def test_dynamic_evaluation_and_the_cache_on_top_match_the_command(runs, kind):
    run = load_run(runs[kind], CPU)
    train_ids, _ = text_ids(run, "train", None)
    ids, _ = text_ids(run, "valid", None)
    segment, tokens, lr, decay, window, theta, lam = 5, 1_500, 3e-4, 0.03, 40, 0.5, 0.15
    rms = rms_by_hand(run.model, train_ids, segment, tokens)
    scored, hidden, targets = dynamic_by_hand(run.model, ids, run.tokenizer.boundary_id, rms, lr, decay, segment)
    with_cache = cache_by_hand(scored, hidden, targets, window, theta, lam, range(len(targets)))
    report = evaluate_json(runs[kind], "--split", "valid", "--dynamic", "--dynamic-lr", lr, "--dynamic-decay", decay,
                           "--dynamic-segment", segment, "--dynamic-train-tokens", tokens, "--cache", window,
                           "--cache-theta", theta, "--cache-lambda", lam)
    assert report["method"] == "dynamic+cache"
    assert report["without_cache"]["loss"] == pytest.approx(-sum(scored) / len(scored), rel=1e-5)
    assert report["loss"] == pytest.approx(-sum(with_cache) / len(with_cache), rel=1e-5)
    assert report["gradient_statistics"]["train_tokens"] == tokens
    assert report["settings"] == {"dynamic_lr": lr, "dynamic_decay": decay, "dynamic_segment": segment,
                                  "cache_window": window, "cache_theta": theta, "cache_lambda": lam}
    assert report["chosen"] == {"dynamic": "given", "cache": "given"}


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tuning_chooses_on_valid_and_the_weights_on_disk_are_unchanged(runs):
    run_dir = runs["word-gru-adaptive"]
    files = {name: digest(run_dir / name) for name in ("model.pt", "checkpoint.pt")}
    common = ["--dynamic", "--tune", "--tune-tokens", 60, "--dynamic-train-tokens", 1_000]
    both = evaluate_json(run_dir, "--split", "test", "--cache", 40, *common)
    assert {name: digest(run_dir / name) for name in files} == files
    assert both["split"] == "test" and both["method"] == "dynamic+cache"
    assert both["chosen"] == {"dynamic": "tuned on valid", "cache": "tuned on valid"}
    tuning = both["tuning"]
    assert tuning["split"] == "valid" and tuning["dynamic"]["tokens"] == 60
    assert len(tuning["dynamic"]["grid"]) == len(DYNAMIC_LRS) * len(DYNAMIC_DECAYS)
    assert len(tuning["cache"]["grid"]) == len(CACHE_THETAS) * len(CACHE_LAMBDAS)
    best_dynamic = min(tuning["dynamic"]["grid"], key=lambda entry: entry["ppl"])
    best_cache = min(tuning["cache"]["grid"], key=lambda entry: entry["ppl"])
    assert both["settings"]["dynamic_lr"] == best_dynamic["dynamic_lr"]
    assert both["settings"]["cache_theta"] == best_cache["cache_theta"]
    assert both["valid"]["ppl"] == pytest.approx(best_cache["ppl"])  # the same valid stream, the chosen settings
    assert both["valid"]["tokens"] == tuning["cache"]["tokens"] == 420
    for search, names in (("dynamic", ("dynamic_lr", "dynamic_decay")), ("cache", ("cache_theta", "cache_lambda"))):
        at_edge = [name for name in names
                   if both["settings"][name] in (min(e[name] for e in tuning[search]["grid"]),
                                                 max(e[name] for e in tuning[search]["grid"]))]
        assert tuning[search]["on_grid_edge"] == at_edge

    alone = evaluate_json(run_dir, "--split", "test", *common)
    assert alone["method"] == "dynamic" and alone["settings"] == {k: both["settings"][k] for k in alone["settings"]}
    assert alone["ppl"] == pytest.approx(both["without_cache"]["ppl"], rel=1e-9)
    assert alone["valid"]["ppl"] == pytest.approx(both["valid"]["without_cache"]["ppl"], rel=1e-9)
    assert {name: digest(run_dir / name) for name in files} == files


@pytest.mark.parametrize("arguments, message", [
    (["--cache-theta", "0.5"], "--cache-theta: only with --cache WINDOW"),
    (["--dynamic-lr", "1e-4"], "--dynamic-lr: only with --dynamic"),
    (["--tune"], "--tune: searches the settings of --cache WINDOW or --dynamic"),
    (["--cache", "10", "--tune", "--cache-lambda", "0.1"], "--cache-lambda: --tune chooses it"),
    (["--cache", "10", "--cache-lambda", "1"], "--cache-lambda 1.0: must be at least 0 and below 1"),
    (["--dynamic", "--batch-size", "4"], "--batch-size: the cache and dynamic evaluation read the text as one"),
    (["--cache", "10", "--tune-tokens", "50"], "--tune-tokens: only with --dynamic --tune"),
])
def test_option_combinations_that_cannot_be_meant_end_in_one_line(runs, arguments, message):
    result = runner.invoke(app, ["evaluate", str(runs["word-lstm-tied"]), *arguments])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
