"""The recurrent cells: the written-out LSTM against nn.LSTM, the variants against their equations, gradients
against finite differences, and every cell through training, a checkpoint, evaluation, sampling and scoring."""

import math

import pytest
import torch
import yaml
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence

from lstm_lm.agreement.items import Item
from lstm_lm.agreement.pairs import PairEncoder
from lstm_lm.agreement.scoring import score_requests
from lstm_lm.config import load_config
from lstm_lm.errors import ConfigError
from lstm_lm.evaluate.generate import generate
from lstm_lm.evaluate.perplexity import evaluate_run
from lstm_lm.model.cells import CoupledLSTM, ExplicitLSTM, PeepholeLSTM
from lstm_lm.model.language_model import LSTM_CELLS, LanguageModel
from lstm_lm.rundir.checkpoint import load_tensors
from lstm_lm.rundir.run_files import load_run
from tests.conftest import tiny_config, train_quietly
from tests.agreement.test_agreement_scoring import PAIRS, char_tokenizer, direct_log_prob, random_model

WRITTEN = {"lstm_explicit": ExplicitLSTM, "lstm_peephole": PeepholeLSTM, "lstm_coupled": CoupledLSTM}
MODULES = {"lstm": torch.nn.LSTM, **WRITTEN, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN}


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_explicit_lstm_equals_nn_lstm_on_outputs_and_gradients():
    torch.manual_seed(0)
    fused = torch.nn.LSTM(5, 7, num_layers=2)
    written = ExplicitLSTM(5, 7, num_layers=2)
    written.load_state_dict(fused.state_dict())  # the same names and shapes: the weights move as they are
    results = []
    for rnn in (fused, written):
        inputs = torch.randn(6, 3, 5, generator=torch.Generator().manual_seed(1), requires_grad=True)
        state = torch.randn(2, 2, 3, 7, generator=torch.Generator().manual_seed(2), requires_grad=True)  # h0, c0
        outputs, (h, c) = rnn(inputs, tuple(state))
        # A loss that weighs every output and both final states differently, so every gradient path counts.
        weights = torch.randn(6, 3, 7, generator=torch.Generator().manual_seed(3))
        ((outputs * weights).sum() + (h * c).sum()).backward()
        grads = [inputs.grad, state.grad, *(p.grad for p in rnn.parameters())]
        results.append((outputs, h, c, grads))
    (fused_out, fused_h, fused_c, fused_grads), (out, h, c, grads) = results
    for expected, got in [(fused_out, out), (fused_h, h), (fused_c, c), *zip(fused_grads, grads)]:
        assert torch.allclose(expected, got, atol=1e-6), (expected - got).abs().max()
    assert len(grads) == 2 + 8 and all(g.abs().sum() > 0 for g in grads)


def test_dropout_falls_between_layers_as_in_nn_lstm():
    """Dropping every unit between the layers leaves the top layer reading zeros, in training only; nn.LSTM with
    the same weights and dropout gives the same outputs."""
    torch.manual_seed(0)
    written = ExplicitLSTM(3, 4, num_layers=2, dropout=1.0)
    fused = torch.nn.LSTM(3, 4, num_layers=2, dropout=1.0)
    fused.load_state_dict(written.state_dict())
    first, second = torch.randn(2, 5, 2, 3)
    assert torch.allclose(written(first)[0], fused(first)[0], atol=1e-6)
    assert torch.equal(written(first)[0], written(second)[0])  # the top layer no longer sees the inputs
    written.eval()
    assert not torch.allclose(written(first)[0], written(second)[0])


@pytest.mark.parametrize("cell", ["lstm_explicit", "lstm_peephole", "lstm_coupled"])
def test_packed_rows_end_in_their_own_state(cell):
    """A packed batch gives each row the outputs and final state it gets alone."""
    torch.manual_seed(0)
    rnn = WRITTEN[cell](4, 6, num_layers=2).eval()
    inputs, lengths = torch.randn(5, 3, 4), torch.tensor([2, 5, 3])
    packed_out, (h, c) = rnn(pack_padded_sequence(inputs, lengths, enforce_sorted=False))
    reference = torch.nn.LSTM(4, 6, num_layers=2)
    if cell == "lstm_explicit":  # and, packed, it still equals nn.LSTM
        reference.load_state_dict(rnn.state_dict())
        reference_out, _ = reference(pack_padded_sequence(inputs, lengths, enforce_sorted=False))
        assert torch.allclose(packed_out.data, reference_out.data, atol=1e-6)
    for row, length in enumerate(lengths.tolist()):
        alone, (h_alone, c_alone) = rnn(inputs[:length, row: row + 1])
        assert torch.allclose(h[:, row], h_alone[:, 0], atol=1e-6)
        assert torch.allclose(c[:, row], c_alone[:, 0], atol=1e-6)
        assert torch.allclose(alone[-1, 0], h[-1, row], atol=1e-6)


def scalar_cell(cell: type, **values: list[float]) -> torch.nn.Module:
    """A one-unit cell with one input, every weight set by hand: weight_ih, weight_hh, bias_ih hold one number per
    gate; bias_hh is zero."""
    rnn = cell(1, 1, num_layers=1)
    with torch.no_grad():
        for name, numbers in values.items():
            parameter = getattr(rnn, f"{name}_l0")
            parameter.copy_(torch.tensor(numbers).view_as(parameter))
        rnn.bias_hh_l0.zero_()
    return rnn


def test_peephole_cell_follows_its_equations():
    w, u, b, p = [0.5, -0.3, 0.8, 0.2], [0.1, 0.4, -0.6, 0.3], [0.05, 0.5, -0.1, 0.2], [0.7, -0.4, 1.1]
    rnn = scalar_cell(PeepholeLSTM, weight_ih=w, weight_hh=u, bias_ih=b, peephole=p)
    xs, h, c = [1.5, -0.7], 0.3, -0.8
    outputs, (h_final, c_final) = rnn(torch.tensor(xs).view(2, 1, 1), (torch.tensor([[[h]]]), torch.tensor([[[c]]])))
    expected = []
    for x in xs:
        pre = [w[k] * x + u[k] * h + b[k] for k in range(4)]  # input, forget, candidate, output
        i, f = sigmoid(pre[0] + p[0] * c), sigmoid(pre[1] + p[1] * c)  # the gates see the cell before the step
        c = f * c + i * math.tanh(pre[2])
        h = sigmoid(pre[3] + p[2] * c) * math.tanh(c)  # the output gate sees the cell after it
        expected.append(h)
    assert outputs.view(-1).tolist() == pytest.approx(expected, abs=1e-6)
    assert (h_final.item(), c_final.item()) == pytest.approx((h, c), abs=1e-6)


def test_peephole_cell_without_peepholes_is_the_lstm():
    torch.manual_seed(0)
    peephole = PeepholeLSTM(3, 4, num_layers=2)
    with torch.no_grad():
        peephole.peephole_l0.zero_()
        peephole.peephole_l1.zero_()
    plain = ExplicitLSTM(3, 4, num_layers=2)
    plain.load_state_dict({k: v for k, v in peephole.state_dict().items() if "peephole" not in k})
    inputs = torch.randn(5, 2, 3)
    assert torch.allclose(peephole(inputs)[0], plain(inputs)[0], atol=1e-7)


def test_coupled_cell_writes_what_it_forgets():
    w, u, b = [0.5, -0.3, 0.8], [0.1, 0.4, -0.6], [0.3, -0.2, 0.1]  # forget, candidate, output
    rnn = scalar_cell(CoupledLSTM, weight_ih=w, weight_hh=u, bias_ih=b)
    assert rnn.weight_ih_l0.shape == (3, 1)  # three gates: there is no input gate
    xs, h, c = [1.5, -0.7, 0.2], 0.3, -0.8
    outputs, (_, c_final) = rnn(torch.tensor(xs).view(3, 1, 1), (torch.tensor([[[h]]]), torch.tensor([[[c]]])))
    expected = []
    for x in xs:
        f, g, o = (w[k] * x + u[k] * h + b[k] for k in range(3))
        f = sigmoid(f)
        c = f * c + (1 - f) * math.tanh(g)
        h = sigmoid(o) * math.tanh(c)
        expected.append(h)
    assert outputs.view(-1).tolist() == pytest.approx(expected, abs=1e-6)
    assert c_final.item() == pytest.approx(c, abs=1e-6)


@pytest.mark.parametrize("cell", [ExplicitLSTM, PeepholeLSTM, CoupledLSTM])
def test_gradients_match_finite_differences(cell):
    torch.manual_seed(0)
    rnn = cell(2, 3, num_layers=2).double()
    names = [name for name, _ in rnn.named_parameters()]

    def run(inputs, h0, c0, *parameters):
        outputs, (h, c) = functional_call(rnn, dict(zip(names, parameters)), (inputs, (h0, c0)))
        return outputs, h, c

    inputs = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    h0, c0 = (torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True) for _ in range(2))
    parameters = [p.detach().clone().requires_grad_() for p in rnn.parameters()]
    assert torch.autograd.gradcheck(run, (inputs, h0, c0, *parameters))


@pytest.mark.parametrize("cell", LSTM_CELLS)
def test_forget_bias_sets_the_forget_gate(cell):
    """With every other weight near zero and a large forget bias, each step keeps the cell as it was: the bias sits
    on the rows the cell reads as its forget gate (on any other gate's rows the cell would halve instead)."""
    config = load_config(None, ["model.embedding_size=4", "model.hidden_size=5", "model.num_layers=2",
                                f"model.cell={cell}", "model.init_range=1e-6", "model.forget_bias=30"]).model
    model = LanguageModel(config, vocab_size=10)
    forget = slice(0, 5) if cell == "lstm_coupled" else slice(5, 10)
    for layer in range(2):
        bias_ih, bias_hh = getattr(model.rnn, f"bias_ih_l{layer}"), getattr(model.rnn, f"bias_hh_l{layer}")
        assert torch.all(bias_ih[forget] == 30) and torch.all(bias_hh[forget] == 0)
        others = torch.ones_like(bias_ih, dtype=torch.bool)
        others[forget] = False
        assert bias_ih[others].abs().max() <= 1e-6  # the other gates keep their initialization
    c0 = torch.full((2, 3, 5), 0.7)
    _, (_, c) = model.rnn(torch.zeros(4, 3, 4), (torch.zeros(2, 3, 5), c0))
    assert torch.allclose(c, c0, atol=1e-5)


def test_forget_bias_needs_a_forget_gate():
    config = load_config(None, ["model.cell=gru", "model.forget_bias=1"]).model
    with pytest.raises(ConfigError, match="model.forget_bias: the gru cell has no forget gate"):
        LanguageModel(config, vocab_size=10)


@pytest.mark.parametrize("cell", MODULES)
def test_every_cell_trains_and_comes_back_from_its_run_directory(cell, tmp_path, synthetic_corpus):
    run_dir = tmp_path / "run"
    config = tiny_config(synthetic_corpus, tmp_path / "cache", f"model.cell={cell}", "train.epochs=4")
    info = train_quietly(config, run_dir)
    # The key word of each 7-token line is the only uncertain one: log(10) / 7 = 0.33 nats; unigram is about 4.
    assert info["results"]["test"]["loss"] < 0.45
    run = load_run(run_dir, torch.device("cpu"))
    assert run.config.model.cell == cell and isinstance(run.model.rnn, MODULES[cell])
    assert getattr(run.model.rnn, "nonlinearity", None) == {"rnn_tanh": "tanh", "rnn_relu": "relu"}.get(cell)
    assert len(run.model.init_hidden(2)) == (2 if cell in LSTM_CELLS else 1)
    # The weights read back give the trainer's own final numbers, and continue a line from its key word.
    assert evaluate_run(run_dir, "test", None, torch.device("cpu"))["loss"] == pytest.approx(
        info["results"]["test"]["loss"], rel=1e-5)
    prompt = run.tokenizer.encode("k3")
    assert run.tokenizer.decode(list(generate(run.model, run.tokenizer, prompt, 5, temperature=0))) == \
        "w3_0 w3_1 w3_2 w3_3 w3_4"


def test_a_one_state_cell_resumes_with_the_same_weights(tmp_path, synthetic_corpus):
    """The GRU's state, (h,), goes into checkpoint.pt and comes back on --resume."""
    overrides = ("model.cell=gru", "train.optimizer=sgd", "train.lr=1")
    straight = tmp_path / "straight"
    train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", *overrides), straight)
    resumed = tmp_path / "resumed"
    train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", *overrides, "train.max_steps=7"), resumed)
    saved_hidden = load_tensors(resumed / "checkpoint.pt")["rank_states"][0]["hidden"]
    assert [tuple(s.shape) for s in saved_hidden] == [(1, 8, 32)]
    train_quietly(load_config(resumed / "config.yaml", ["train.max_steps=null"]), resumed, resume=True)
    a, b = load_tensors(straight / "checkpoint.pt")["model"], load_tensors(resumed / "checkpoint.pt")["model"]
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_a_run_directory_from_before_the_cell_keys_loads_as_lstm(tmp_path, synthetic_corpus):
    run_dir = tmp_path / "run"
    train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", "train.max_steps=2"), run_dir)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    del saved["model"]["cell"], saved["model"]["forget_bias"]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    run = load_run(run_dir, torch.device("cpu"))
    assert run.config.model.cell == "lstm" and isinstance(run.model.rnn, torch.nn.LSTM)


@pytest.mark.parametrize("cell", ["lstm_peephole", "lstm_coupled", "gru"])
def test_packed_agreement_scores_equal_each_sentence_scored_alone(cell):
    """Both scoring passes, the second started from a slice of the first's state, for a written cell and a
    one-state cell (characters: every form is several pieces, so the second pass always runs)."""
    tokenizer = char_tokenizer()
    model = random_model(tokenizer.vocab_size, f"model.cell={cell}")
    boundary = tokenizer.boundary_id
    encoder = PairEncoder(tokenizer)
    requests = [encoder.encode(Item(good, bad, f"test:{i}"), "sentence").request for i, (good, bad) in enumerate(PAIRS)]
    batched = score_requests(model, boundary, requests, count_prefix=True, batch_size=4)
    for (good, bad), scores in zip(PAIRS, batched):
        expected = [direct_log_prob(model, boundary, tokenizer.encode(text), 0) for text in (good, bad)]
        assert scores == pytest.approx(expected, abs=1e-4), good
