"""The AWD-LSTM regularizers (Merity et al. 2018): locked and embedding dropout, weight drop, per-layer sizes,
AR/TAR, NT-ASGD weight averaging and variable-length BPTT, one by one and all together in a short run."""

import json
import warnings

import lstm_lm.model.stack as stack_module
import pytest
import torch
from torch import nn
from torch.func import functional_call
from typer.testing import CliRunner

from lstm_lm.cli import app
from lstm_lm.config import ModelConfig, load_config
from lstm_lm.data.batches import bptt_windows, variable_bptt_windows
from lstm_lm.data.corpus import load_corpus
from lstm_lm.errors import ConfigError
from lstm_lm.evaluate.perplexity import evaluate_layout
from lstm_lm.model.language_model import LanguageModel
from lstm_lm.model.regularization import (LockedDropout, PlainDropout, activation_penalty, embedding_dropout,
                                          is_recurrent_matrix, keep_mask, plain_dropout, weight_dropped)
from lstm_lm.model.stack import LayerStack
from lstm_lm.rundir.checkpoint import load_tensors
from lstm_lm.rundir.run_files import load_run, read_metrics
from lstm_lm.train.averaging import WeightAverage
from lstm_lm.train.progress import Reporter
from lstm_lm.train.trainer import Trainer
from tests.conftest import quiet_console, tiny_config, train_quietly, write_synthetic_corpus

CPU = torch.device("cpu")


@pytest.mark.parametrize("p", [0.1, 0.3, 0.65])
def test_keep_mask_keeps_each_element_with_probability_one_minus_p(p):
    torch.manual_seed(0)
    keep = keep_mask((1000, 999), p, CPU)  # not a multiple of the three parts drawn per 64-bit number
    assert keep.dtype == torch.bool and keep.shape == (1000, 999)
    # each of the three 16-bit parts of a draw (position mod 3) is uniform: none is the draw's constant top part
    for part in range(3):
        assert keep.view(-1)[part::3].float().mean().item() == pytest.approx(1 - p, abs=0.003)
    torch.manual_seed(0)
    assert torch.equal(keep_mask((1000, 999), p, CPU), keep)  # the generator's seed decides


def test_plain_dropout_draws_a_new_mask_for_every_element():
    torch.manual_seed(0)
    x = torch.ones(40, 30, 50)
    dropped = plain_dropout(x, 0.3, training=True)
    assert dropped.unique().tolist() == [0.0, pytest.approx(1 / 0.7)]
    assert (dropped == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert not torch.equal(dropped[0] == 0, dropped[1] == 0)  # not one mask for all time steps
    bf16 = plain_dropout(x.to(torch.bfloat16), 0.3, training=True)
    assert bf16.dtype == torch.bfloat16
    assert torch.equal(plain_dropout(x, 1.0, training=True), torch.zeros_like(x))
    assert plain_dropout(x, 0.3, training=False) is x


def model_config(**fields) -> ModelConfig:
    """A small model with every regularizer off unless named."""
    return ModelConfig(**{"embedding_size": 8, "hidden_size": 12, "num_layers": 2, "dropout": 0.0, **fields})


def make_trainer(tmp_path, corpus, *overrides, run: str = "run") -> Trainer:
    config = tiny_config(corpus, tmp_path / "cache", *overrides)
    run_dir = tmp_path / run
    run_dir.mkdir(exist_ok=True)
    return Trainer(config, run_dir, load_corpus(config.data, config.tokenizer), CPU,
                   Reporter(run_dir / "metrics.jsonl", quiet_console()))


def clones(parameters) -> list[torch.Tensor]:
    return [parameter.detach().clone() for parameter in parameters]


# ---- locked dropout --------------------------------------------------------------------------------------------------

def test_locked_dropout_draws_one_mask_for_every_time_step():
    torch.manual_seed(0)
    p = 0.3
    dropout = LockedDropout(p).train()
    out = dropout(torch.ones(7, 5, 9))
    for t in range(7):
        assert torch.equal(out[t], out[0]), t  # the same units are dropped all along the sequence
    kept = out[out != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)))
    assert 0 < (out[0] == 0).sum() < out[0].numel()  # something dropped, something kept

    # Other inputs are multiplied by the same kind of mask, not replaced by it.
    x = torch.randn(4, 3, 6)
    torch.manual_seed(1)
    mask = dropout(torch.ones(4, 3, 6))
    torch.manual_seed(1)
    assert torch.allclose(dropout(x), x * mask)

    # On a large tensor the share dropped is p: 100,000 mask entries, standard deviation 0.0014.
    large = LockedDropout(p).train()(torch.ones(2, 400, 250))
    assert abs((large[0] == 0).double().mean().item() - p) < 0.01
    assert torch.equal(large[0], large[1])


def test_locked_dropout_is_the_identity_in_evaluation_and_at_zero():
    x = torch.randn(6, 3, 5)
    assert torch.equal(LockedDropout(0.5).eval()(x), x)
    assert torch.equal(LockedDropout(0.0).train()(x), x)


def test_locked_dropout_scales_bf16_activations_without_bias():
    """Under bf16 autocast the layers' outputs are bf16; rounding the scale 1/(1-p) itself to bf16 would make every
    kept unit 0.2% too large at p = 0.25. Scaled in float32, only each product is rounded, without a common bias."""
    torch.manual_seed(0)
    x = (torch.rand(1, 64, 1000) + 0.5).bfloat16()
    out = LockedDropout(0.25).train()(x)
    assert out.dtype == torch.bfloat16
    kept = out != 0
    ratio = (out[kept].double() / x[kept].double()).mean().item()
    assert abs(ratio * 0.75 - 1) < 2e-4


def test_model_wires_locked_dropout_where_set_and_plain_dropout_elsewhere():
    locked = LanguageModel(model_config(num_layers=1, dropout=0.1, dropout_input=0.3, dropout_output=0.4), 20)
    assert isinstance(locked.input_dropout, LockedDropout) and locked.input_dropout.p == 0.3
    assert isinstance(locked.output_dropout, LockedDropout) and locked.output_dropout.p == 0.4
    assert isinstance(locked.rnn, nn.LSTM)  # neither hidden dropout, weight drop nor sizes: still one fused module
    plain = LanguageModel(model_config(dropout=0.1), 20)
    assert type(plain.input_dropout) is PlainDropout and plain.input_dropout.p == 0.1
    assert type(plain.output_dropout) is PlainDropout and plain.output_dropout.p == 0.1
    stacked = LanguageModel(model_config(dropout_hidden=0.25), 20)
    assert isinstance(stacked.rnn, LayerStack) and stacked.rnn.between.p == 0.25
    none_between = LanguageModel(model_config(dropout=0.5, dropout_hidden=0.0), 20)
    assert isinstance(none_between.rnn, nn.LSTM) and none_between.rnn.dropout == 0.0  # 0: no dropout, not model.dropout

    # Through the model: with only input dropout on, each column loses the same embedding units at every step.
    torch.manual_seed(3)
    model = LanguageModel(model_config(embedding_size=40, num_layers=1, dropout_input=0.5), 30).train()
    tokens = torch.randint(30, (6, 4))
    dropped = model.embed(tokens) == 0
    assert dropped.any() and not dropped.all()
    for t in range(6):
        assert torch.equal(dropped[t], dropped[0])


def test_locked_dropout_stands_between_layers_only():
    torch.manual_seed(0)
    model = LanguageModel(model_config(hidden_sizes=[24, 16], dropout_hidden=0.5), 20).train()
    seen = []
    model.rnn.layers[1].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    x, state = torch.randn(6, 3, 8), model.init_hidden(3)
    top, _ = model.rnn(x, state)
    below, _ = model.rnn.layers[0](x, state[:2])  # the bottom layer itself draws nothing (no weight drop)
    kept = seen[0] != 0
    assert 0 < kept.sum() < kept.numel()
    assert all(torch.equal(kept[t], kept[0]) for t in range(6))  # one mask along the sequence
    assert torch.allclose(seen[0][kept], 2 * below[kept])
    assert (top != 0).all()  # nothing dropped after the last layer: that is model.dropout_output's place
    model.eval()
    model.rnn(x, state)
    assert torch.equal(seen[1], below)


# ---- embedding dropout -----------------------------------------------------------------------------------------------

def assert_whole_words_dropped(out: torch.Tensor, embedded: torch.Tensor, tokens: torch.Tensor, p: float) -> set[int]:
    """Every occurrence of a word is zero, or every one is its embedding scaled by 1/(1-p). Returns the dropped."""
    dropped = set()
    for word in tokens.unique().tolist():
        where = tokens == word
        rows, expected = out[where], embedded[where]
        if torch.equal(rows, torch.zeros_like(rows)):
            dropped.add(word)
        else:
            assert torch.allclose(rows, expected / (1 - p)), word  # kept whole, at every occurrence
    return dropped


def test_embedding_dropout_drops_whole_words_at_every_occurrence():
    torch.manual_seed(0)
    p, vocab = 0.5, 12
    tokens = torch.randint(vocab, (30, 8))  # each word about 20 times
    embedded = torch.randn(vocab, 6)[tokens]
    out = embedding_dropout(embedded, tokens, vocab, p, training=True)
    dropped = assert_whole_words_dropped(out, embedded, tokens, p)
    assert 0 < len(dropped) < len(tokens.unique())  # both fates occur
    # The share of words dropped is p (4000 words, each once: standard deviation 0.008).
    words = torch.arange(4000).view(400, 10)
    many = embedding_dropout(torch.ones(400, 10, 3), words, 4000, 0.3, training=True)
    assert abs((many[..., 0] == 0).double().mean().item() - 0.3) < 0.04
    assert torch.equal(embedding_dropout(embedded, tokens, vocab, p, training=False), embedded)
    assert torch.equal(embedding_dropout(embedded, tokens, vocab, 0.0, training=True), embedded)


def test_model_embed_drops_whole_rows_of_the_embedding_matrix():
    torch.manual_seed(1)
    p = 0.4
    model = LanguageModel(model_config(num_layers=1, dropout_embedding=p), 15).train()
    assert type(model.input_dropout) is PlainDropout and model.input_dropout.p == 0  # only embedding dropout acts
    tokens = torch.randint(15, (20, 6))
    out = model.embed(tokens)
    looked_up = model.embedding(tokens).detach()
    dropped = assert_whole_words_dropped(out.detach(), looked_up, tokens, p)
    assert 0 < len(dropped) < len(tokens.unique())
    # A dropped word is gone from the matrix: its row gets no gradient; a kept word's row does.
    out.sum().backward()
    grad = model.embedding.weight.grad
    for word in tokens.unique().tolist():
        assert (grad[word] == 0).all() == (word in dropped), word
    model.eval()
    assert torch.equal(model.embed(tokens), model.embedding(tokens))


# ---- weight drop -----------------------------------------------------------------------------------------------------

def test_weight_drop_leaves_the_layers_own_parameters_untouched():
    torch.manual_seed(0)
    model = LanguageModel(model_config(weight_drop=0.5), 20).train()
    assert isinstance(model.rnn, LayerStack)
    layers = list(model.rnn.layers)
    before = [{name: (parameter, parameter.detach().clone()) for name, parameter in layer.named_parameters()}
              for layer in layers]
    tokens = torch.randint(20, (6, 3))
    losses, _ = model(tokens, model.init_hidden(3), tokens)
    losses.sum().backward()
    for layer, saved in zip(layers, before):
        for name, parameter in layer.named_parameters():
            original, values = saved[name]
            assert parameter is original and isinstance(parameter, nn.Parameter), name  # not replaced
            assert torch.equal(parameter, values), name  # not masked in place
            assert parameter.is_contiguous(), name
        assert layer.weight_hh_l0.grad is not None


def test_weight_dropped_contiguous_is_one_buffer_in_parameter_order():
    torch.manual_seed(0)
    p = 0.5
    layer = nn.LSTM(5, 7)
    params = dict(layer.named_parameters())
    torch.manual_seed(1)
    weights = weight_dropped(layer, p, contiguous=True)
    assert list(weights) == list(params) == layer._flat_weights_names  # the order the fused kernel reads
    storage = {tensor.untyped_storage().data_ptr() for tensor in weights.values()}
    assert len(storage) == 1  # views into one buffer...
    assert storage.isdisjoint({parameter.untyped_storage().data_ptr() for parameter in params.values()})  # ...new
    tensors = list(weights.values())
    size = tensors[0].element_size()
    for previous, tensor in zip(tensors, tensors[1:]):
        assert tensor.data_ptr() == previous.data_ptr() + previous.numel() * size  # each starts where the last ends
    assert all(tensor.is_contiguous() for tensor in tensors)
    assert tensors[0].untyped_storage().nbytes() == sum(t.numel() for t in tensors) * size  # nothing else in it
    for name, tensor in weights.items():
        assert tensor.shape == params[name].shape
        if is_recurrent_matrix(name):
            kept = tensor != 0
            assert 0 < kept.sum() < kept.numel()
            assert torch.allclose(tensor[kept], params[name][kept] / (1 - p))
        else:
            assert torch.equal(tensor, params[name]), name  # input weights and biases as they are
    assert [name for name in weights if is_recurrent_matrix(name)] == ["weight_hh_l0"]
    # Without `contiguous` the other weights are the parameters themselves, and the same seed drops the same.
    torch.manual_seed(1)
    separate = weight_dropped(layer, p, contiguous=False)
    assert separate["weight_ih_l0"] is params["weight_ih_l0"]
    assert all(torch.equal(separate[name], weights[name]) for name in params)


def plain_lstm_like(stack: LayerStack) -> nn.LSTM:
    """A fused multi-layer nn.LSTM holding the stack's weights (all layers of one size)."""
    sizes = stack.sizes
    plain = nn.LSTM(stack.layers[0].input_size, sizes[0], len(sizes))
    with torch.no_grad():
        for index, layer in enumerate(stack.layers):
            for name, parameter in layer.named_parameters():
                getattr(plain, name.replace("l0", f"l{index}")).copy_(parameter)
    return plain


def test_weight_drop_draws_a_new_mask_each_training_pass_and_none_in_evaluation():
    torch.manual_seed(0)
    model = LanguageModel(model_config(weight_drop=0.5), 20)
    stack = model.rnn
    x, state = torch.randn(6, 3, 8), model.init_hidden(3)
    stack.train()
    first, _ = stack(x, state)
    second, _ = stack(x, state)
    assert not torch.allclose(first, second)  # the between-layer dropout is 0: only the weights' mask changed
    stack.eval()
    out, new_state = stack(x, state)
    again, _ = stack(x, state)
    assert torch.equal(out, again)
    expected, (h, c) = plain_lstm_like(stack)(x, (torch.cat(state[0::2]), torch.cat(state[1::2])))
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(torch.cat(new_state[0::2]), h, atol=1e-6)
    assert torch.allclose(torch.cat(new_state[1::2]), c, atol=1e-6)
    assert not torch.allclose(first, expected)


def test_weight_drop_gradient_is_zero_exactly_where_the_mask_dropped(monkeypatch):
    p = 0.5
    torch.manual_seed(0)
    model = LanguageModel(model_config(weight_drop=p), 20).train()
    drawn = []

    def spy(layer, p, contiguous):
        weights = weight_dropped(layer, p, contiguous)
        weights["weight_hh_l0"].retain_grad()
        drawn.append((layer, weights))
        return weights

    monkeypatch.setattr(stack_module, "weight_dropped", spy)
    tokens = torch.randint(20, (6, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation, no copy of non-contiguous weights, nothing
        losses, _ = model(tokens, model.init_hidden(3), tokens)
        losses.sum().backward()
    assert [layer for layer, _ in drawn] == list(model.rnn.layers)  # one draw per layer per pass
    for layer, weights in drawn:
        functional = weights["weight_hh_l0"]
        kept = functional != 0  # the initial weights are never exactly 0
        assert 0 < kept.sum() < kept.numel()
        grad = layer.weight_hh_l0.grad
        assert (grad[~kept] == 0).all()  # a dropped weight took no part and learns nothing
        assert (grad[kept] != 0).float().mean() > 0.99
        assert torch.allclose(grad, functional.grad * kept / (1 - p), atol=1e-7)  # the chain rule through the mask
        assert layer.weight_ih_l0.grad is not None and (layer.weight_ih_l0.grad != 0).any()


def test_functional_call_contiguous_matches_separate_weights():
    p = 0.5
    torch.manual_seed(0)
    layer = nn.LSTM(4, 6)
    x, state = torch.randn(5, 2, 4), (torch.randn(1, 2, 6), torch.randn(1, 2, 6))
    outputs, grads = [], []
    for contiguous in (True, False):
        layer.zero_grad()
        torch.manual_seed(11)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out, (h, c) = functional_call(layer, weight_dropped(layer, p, contiguous), (x, state))
            (out.sum() + h.sum() + c.sum()).backward()
        outputs.append(out.detach())
        grads.append({name: parameter.grad.clone() for name, parameter in layer.named_parameters()})
    assert torch.equal(outputs[0], outputs[1])
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-7), name
    # And the mask mattered: without it the output differs.
    assert not torch.allclose(layer(x, state)[0], outputs[0])


@pytest.mark.parametrize("cell", ["lstm", "lstm_explicit", "lstm_peephole", "lstm_coupled", "gru", "rnn_tanh",
                                  "rnn_relu"])
def test_weight_drop_reaches_the_recurrent_matrix_of_every_cell(cell):
    torch.manual_seed(0)
    model = LanguageModel(model_config(cell=cell, weight_drop=0.5), 20)
    for layer in model.rnn.layers:
        assert [name for name, _ in layer.named_parameters() if is_recurrent_matrix(name)] == ["weight_hh_l0"]
    tokens = torch.randint(20, (5, 2))
    hidden = model.init_hidden(2)
    model.train()
    assert not torch.allclose(model(tokens, hidden)[0], model(tokens, hidden)[0])
    model.eval()
    assert torch.equal(model(tokens, hidden)[0], model(tokens, hidden)[0])


# ---- per-layer sizes -------------------------------------------------------------------------------------------------

def test_per_layer_sizes_tie_without_projection():
    model = LanguageModel(model_config(embedding_size=16, hidden_sizes=[24, 16], tie_weights=True), 30)
    assert model.projection is None
    assert model.decoder.weight is model.embedding.weight
    assert [(layer.input_size, layer.hidden_size) for layer in model.rnn.layers] == [(16, 24), (24, 16)]
    hidden = model.init_hidden(3)
    assert [part.shape for part in hidden] == [(1, 3, 24), (1, 3, 24), (1, 3, 16), (1, 3, 16)]
    logits, new_hidden = model.eval()(torch.randint(30, (5, 3)), hidden)
    assert logits.shape == (5, 3, 30)
    assert [part.shape for part in new_hidden] == [part.shape for part in hidden]
    # A last size other than the embedding's needs the projection; one state part per layer for the GRU.
    projected = LanguageModel(model_config(embedding_size=16, hidden_sizes=[24, 20], tie_weights=True), 30)
    assert projected.projection.weight.shape == (16, 20)
    gru = LanguageModel(model_config(cell="gru", hidden_sizes=[24, 16]), 30)
    assert [part.shape for part in gru.init_hidden(2)] == [(1, 2, 24), (1, 2, 16)]


def test_hidden_sizes_must_name_one_size_per_layer():
    with pytest.raises(ConfigError, match=r"model\.hidden_sizes.*model\.num_layers = 3"):
        LanguageModel(model_config(hidden_sizes=[24, 16], num_layers=3), 30)
    config = load_config(None, ["model.hidden_sizes=[8, 8, 8]", "model.num_layers=2"])
    with pytest.raises(ConfigError, match=r"model\.hidden_sizes"):
        LanguageModel(config.model, 30)


# ---- AR / TAR --------------------------------------------------------------------------------------------------------

def test_activation_penalty_by_hand():
    torch.manual_seed(0)
    raw, dropped = torch.randn(4, 2, 3), torch.randn(4, 2, 3)
    alpha, beta = 2.0, 0.5
    square_sum = sum(dropped[t, b, h].item() ** 2 for t in range(4) for b in range(2) for h in range(3))
    step_sum = sum((raw[t, b, h].item() - raw[t - 1, b, h].item()) ** 2
                   for t in range(1, 4) for b in range(2) for h in range(3))
    ar, tar = alpha * square_sum / 24, beta * step_sum / 18
    assert activation_penalty(raw, dropped, alpha, beta).item() == pytest.approx(ar + tar, rel=1e-6)
    assert activation_penalty(raw, dropped, alpha, 0.0).item() == pytest.approx(ar, rel=1e-6)
    assert activation_penalty(raw, dropped, 0.0, beta).item() == pytest.approx(tar, rel=1e-6)
    assert activation_penalty(raw, dropped, 0.0, 0.0).item() == 0.0
    assert activation_penalty(raw[:1], dropped[:1], 0.0, beta).item() == 0.0  # one step: no change to penalize
    assert activation_penalty(raw.bfloat16(), dropped.bfloat16(), alpha, beta).dtype == torch.float32


def test_forward_returns_the_top_outputs_before_and_after_their_dropout():
    torch.manual_seed(0)
    model = LanguageModel(model_config(hidden_sizes=[24, 16], dropout_output=0.5), 20).train()
    tokens = torch.randint(20, (6, 3))
    hidden = model.init_hidden(3)
    losses, _, (raw, dropped) = model(tokens, hidden, tokens, activations=True)
    assert losses.shape == (6, 3) and raw.shape == dropped.shape == (6, 3, 16)  # the top layer's units
    assert torch.allclose(raw, model.rnn(model.embed(tokens), hidden)[0])  # nothing random before the output
    kept = dropped != 0
    assert 0 < kept.sum() < kept.numel()
    assert torch.allclose(dropped[kept], 2 * raw[kept])
    assert all(torch.equal(kept[t], kept[0]) for t in range(6))  # locked
    assert len(model(tokens, hidden, tokens)) == 2  # without `activations`, as before


def test_train_step_adds_ar_and_tar_to_the_objective(tmp_path, synthetic_corpus):
    common = ("train.optimizer=sgd", "train.lr=1", "train.clip=0", "model.num_layers=2",
              "model.hidden_sizes=[24, 16]")
    alpha, beta = 50.0, 20.0
    plain = make_trainer(tmp_path, synthetic_corpus, *common, run="plain")
    penalized = make_trainer(tmp_path, synthetic_corpus, *common, f"train.ar_alpha={alpha}",
                             f"train.tar_beta={beta}", run="penalized")
    start = clones(penalized.parameters)
    assert all(torch.equal(a, b) for a, b in zip(clones(plain.parameters), start))  # the same seed, same weights
    # The objective by hand, on a copy of the initial model: the top layer's outputs from a separate pass.
    reference = LanguageModel(penalized.config.model, penalized.model.vocab_size)
    reference.load_state_dict(penalized.model.state_dict())
    inputs, targets = penalized.train_data[:10], penalized.train_data[1:11]
    hidden = reference.init_hidden(inputs.size(1))
    losses, _ = reference(inputs, hidden, targets)
    raw = reference.rnn(reference.embed(inputs), hidden)[0]
    objective = losses.mean() + alpha * raw.pow(2).mean() + beta * (raw[1:] - raw[:-1]).pow(2).mean()
    objective.backward()

    plain_loss, _ = plain.train_step(inputs, targets)
    loss, grad_norm = penalized.train_step(inputs, targets)
    assert loss.item() == pytest.approx(plain_loss.item(), rel=1e-6)  # the logged loss is the likelihood's alone
    expected = [parameter.grad for parameter in reference.parameters()]
    for got, want, before, after in zip((p.grad for p in penalized.parameters), expected, start,
                                        penalized.parameters):
        assert torch.allclose(got, want, atol=1e-6)
        assert torch.allclose(before - after.detach(), want, atol=1e-6)  # the step took that gradient (lr 1)
    assert grad_norm.item() == pytest.approx(torch.linalg.vector_norm(torch.stack(
        [g.norm() for g in expected])).item(), rel=1e-5)
    difference = max((a.grad - b.grad).abs().max().item() for a, b in zip(penalized.parameters, plain.parameters))
    assert difference > 1e-3  # the penalty moved the weights


# ---- NT-ASGD ---------------------------------------------------------------------------------------------------------

def test_nt_asgd_switches_at_the_first_validation_worse_than_the_best_before_the_last_nonmono(
        tmp_path, synthetic_corpus):
    trainer = make_trainer(tmp_path, synthetic_corpus, "train.optimizer=nt_asgd", "train.nonmono=2")
    assert type(trainer.optimizer) is torch.optim.SGD
    # 10.0: worse, but too few validations to judge; 2.5 and 2.9: worse than 2.0, which is among the last two;
    # 3.1: worse than min(3, 10, 2) = 2, the best before the last two: the switch.
    losses = [3.0, 10.0, 2.0, 2.5, 2.9, 3.1, 1.0, 5.0]
    switch = 5
    for index, loss in enumerate(losses):
        trainer.state.step = 10 * (index + 1)
        trainer.consider_averaging(loss)
        assert (trainer.average is not None) == (index >= switch), index
        if index == switch:
            average = trainer.average
            assert average.count == 0 and trainer.state.averaging_since == 60
    assert trainer.average is average  # started once, never restarted
    assert trainer.state.valid_history == losses
    records = [r for r in read_metrics(trainer.run_dir / "metrics.jsonl") if r["event"] == "averaging"]
    assert [r["step"] for r in records] == [60]

    improving = make_trainer(tmp_path, synthetic_corpus, "train.optimizer=nt_asgd", "train.nonmono=2", run="b")
    for loss in (8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0):
        improving.consider_averaging(loss)
        assert improving.average is None
    improving.consider_averaging(3.0)  # worse than 1 and 2, but only as good as 3 before them: strictly worse only
    assert improving.average is None
    improving.consider_averaging(2.5)  # worse than 2.0, the best before the last two (1.0, 3.0)
    assert improving.average is not None
    sgd = make_trainer(tmp_path, synthetic_corpus, "train.optimizer=sgd", "train.nonmono=2", run="c")
    for loss in losses:
        sgd.consider_averaging(loss)
    assert sgd.average is None  # only nt_asgd averages


def test_weight_average_is_the_mean_of_the_weights_after_each_step():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step():
        optimizer.zero_grad()
        model(torch.randn(5, 4)).pow(2).sum().backward()
        optimizer.step()

    step()
    average = WeightAverage(list(model.parameters()))
    assert average.count == 0 and all(torch.equal(a, p) for a, p in zip(average.average, model.parameters()))
    after_steps = []
    for k in range(1, 6):
        step()
        average.update()
        after_steps.append(clones(model.parameters()))
        assert average.count == k
        for index, mean in enumerate(average.average):
            assert torch.allclose(mean, torch.stack([weights[index] for weights in after_steps]).mean(0),
                                  atol=1e-6)
    assert not torch.allclose(average.average[0], model.weight)  # the mean lags the iterates

    live = clones(model.parameters())
    with average.swapped_in():
        assert all(torch.equal(p, a) for p, a in zip(model.parameters(), average.average))
        assert torch.is_grad_enabled()  # the body keeps the caller's grad mode
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), live))
    with pytest.raises(RuntimeError, match="inside"):
        with average.swapped_in():
            raise RuntimeError("inside")
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), live))  # restored after an error too

    other = WeightAverage(list(nn.Linear(4, 3).parameters()))
    other.load_state_dict(average.state_dict())
    assert other.count == 5 and all(torch.equal(a, b) for a, b in zip(other.average, average.average))
    with pytest.raises(ValueError, match="1 averaged tensors for 2 parameters"):
        other.load_state_dict({"count": 1, "average": [torch.zeros(3)]})


def test_validation_uses_the_average_and_resume_keeps_it(tmp_path, synthetic_corpus):
    overrides = ("train.optimizer=nt_asgd", "train.nonmono=2", "train.lr=1")
    trainer = make_trainer(tmp_path, synthetic_corpus, *overrides)
    windows = list(bptt_windows(trainer.train_data, 10))
    for _, inputs, targets in windows[:3]:
        trainer.train_step(inputs, targets)
    trainer.state.step = 3
    trainer.save_checkpoint()
    assert make_trainer(tmp_path, synthetic_corpus, *overrides).restore_checkpoint()  # loads...
    assert load_tensors(trainer.run_dir / "checkpoint.pt")["average"] is None  # ...with nothing averaged yet

    trainer.state.valid_history = [1.0, 2.0, 3.0]
    trainer.consider_averaging(5.0)  # worse than 1.0: averaging begins
    assert trainer.average is not None
    for _, inputs, targets in windows[3:7]:
        trainer.train_step(inputs, targets)
    trainer.state.step = 7
    assert trainer.average.count == 4

    live = clones(trainer.parameters)
    result = trainer.validate()
    assert all(torch.equal(p, w) for p, w in zip(trainer.parameters, live))  # the trained weights are back
    averaged = LanguageModel(trainer.config.model, trainer.model.vocab_size)
    with torch.no_grad():
        for parameter, mean in zip(averaged.parameters(), trainer.average.average):
            parameter.copy_(mean)
    expected = evaluate_layout(averaged, *trainer.valid_layout, trainer.config.train.bptt, CPU)
    assert result.loss == pytest.approx(expected.loss, rel=1e-9)
    assert result.loss != pytest.approx(evaluate_layout(trainer.model, *trainer.valid_layout, 10, CPU).loss, rel=1e-4)
    record = [r for r in read_metrics(trainer.run_dir / "metrics.jsonl") if r["event"] == "valid"][-1]
    assert record["loss"] == pytest.approx(expected.loss, rel=1e-9) and record["best"]
    saved = load_tensors(trainer.run_dir / "model.pt")  # the first validation is the best so far: saved
    names = [name for name, _ in trainer.model.named_parameters()]
    for name, mean in zip(names, trainer.average.average):
        assert torch.equal(saved[name], mean), name
    assert not torch.equal(saved[names[0]], live[0])

    trainer.save_checkpoint()
    resumed = make_trainer(tmp_path, synthetic_corpus, *overrides)
    resumed.resume()
    assert resumed.average.count == trainer.average.count == 4
    assert all(torch.equal(a, b) for a, b in zip(resumed.average.average, trainer.average.average))
    assert all(torch.equal(p, w) for p, w in zip(resumed.parameters, live))  # the live weights, not the average
    assert resumed.state.valid_history == trainer.state.valid_history
    assert resumed.state.averaging_since == trainer.state.averaging_since == 3
    # The restored average follows the resumed model's weights: one more step on each gives the same mean.
    _, inputs, targets = windows[7]
    trainer.train_step(inputs, targets)
    resumed.train_step(inputs, targets)
    assert resumed.average.count == 5
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(resumed.average.average, trainer.average.average))
    assert not torch.allclose(resumed.average.average[0], averaged.embedding.weight)


# ---- variable-length BPTT --------------------------------------------------------------------------------------------

def test_variable_bptt_windows_cover_the_rows_contiguously():
    rows, columns, bptt, start = 1200, 3, 20, 0
    source = torch.arange(rows * columns).view(rows, columns)
    windows = list(variable_bptt_windows(source, bptt, start, seed=5))
    expected_row = start
    for row, inputs, targets in windows:
        assert row == expected_row  # no gap, no overlap
        assert torch.equal(inputs, source[row: row + len(inputs)])
        assert torch.equal(targets, inputs + columns)  # the next row: each input's next token
        expected_row += len(inputs)
    assert expected_row == rows - 1  # to the end: the last row is only a target
    lengths = [len(inputs) for _, inputs, _ in windows]
    assert all(5 <= length <= bptt + 40 for length in lengths[:-1])
    assert 1 <= lengths[-1] <= bptt + 40
    assert len(set(lengths)) > 5  # they vary...
    assert 15 < sum(lengths[:-1]) / len(lengths[:-1]) < 22  # ...around bptt (and, one time in 20, bptt / 2)
    assert min(lengths[:-1]) < 15  # a half-length window or a low draw occurs in 60 windows
    # A tiny bptt is held to the floor of 5, the ceiling bptt + 40 holds too.
    small = [len(inputs) for _, inputs, _ in variable_bptt_windows(source, 1, seed=6)]
    assert all(5 <= length <= 41 for length in small[:-1]) and small.count(5) > len(small) // 2


def test_variable_bptt_lengths_follow_the_seed_alone_so_ranks_and_resumes_agree():
    source = torch.arange(2000).view(500, 4)

    def lengths(seed, start=0):
        return [(row, len(inputs)) for row, inputs, _ in variable_bptt_windows(source, 20, start, seed=seed)]

    straight = lengths(3)
    torch.manual_seed(0)  # the global generator (dropout masks, which differ between ranks) plays no part
    assert lengths(3) == straight
    assert lengths(3) != lengths(4)
    # Stopped after 5 windows and resumed from the next one's row: the same windows as straight through.
    row = straight[5][0]
    assert straight[:5] + lengths(3, start=row) == straight


def test_variable_bptt_scales_the_step_lr_by_window_length(tmp_path, synthetic_corpus):
    trainer = make_trainer(tmp_path, synthetic_corpus, "train.optimizer=sgd", "train.lr=0.5", "train.clip=0",
                           "train.variable_bptt=true")
    data = trainer.train_data
    for length in (7, 15, 10):
        before = clones(trainer.parameters)
        trainer.train_step(data[:length], data[1:length + 1])
        lr = 0.5 * length / 10
        assert [group["lr"] for group in trainer.optimizer.param_groups] == [pytest.approx(lr)]
        for parameter, old in zip(trainer.parameters, before):
            assert torch.allclose(old - parameter.detach(), lr * parameter.grad, atol=1e-7)
        assert trainer.state.lr == 0.5  # the schedule's lr is not changed by the scaling
    fixed = make_trainer(tmp_path, synthetic_corpus, "train.optimizer=sgd", "train.lr=0.5", run="fixed")
    fixed.train_step(data[:7], data[1:8])
    assert fixed.optimizer.param_groups[0]["lr"] == 0.5


# ---- all of them together --------------------------------------------------------------------------------------------

ALL_ON = ("model.num_layers=2", "model.hidden_sizes=[48, 32]", "model.tie_weights=true", "model.init=default",
          "model.dropout_input=0.2", "model.dropout_hidden=0.2", "model.dropout_output=0.2",
          "model.dropout_embedding=0.1", "model.weight_drop=0.3",
          "train.optimizer=nt_asgd", "train.lr=2", "train.clip=0.25", "train.nonmono=2", "train.eval_every_steps=10",
          "train.variable_bptt=true", "train.ar_alpha=1", "train.tar_beta=1", "train.epochs=8")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One short run with every regularizer on (about 2 s): embedding size 32 = the last layer's, so tied."""
    root = tmp_path_factory.mktemp("all_on")
    corpus = write_synthetic_corpus(root / "corpus")
    info = train_quietly(tiny_config(corpus, root / "cache", *ALL_ON), root / "run")
    return root, corpus, info


def test_everything_on_still_learns(full_run):
    root, _, info = full_run
    run_dir = root / "run"
    run = load_run(run_dir, CPU)
    model = run.model
    assert isinstance(model.rnn, LayerStack) and model.rnn.sizes == [48, 32] and model.rnn.weight_drop == 0.3
    assert model.decoder.weight is model.embedding.weight and model.projection is None
    assert isinstance(model.input_dropout, LockedDropout) and isinstance(model.output_dropout, LockedDropout)
    records = read_metrics(run_dir / "metrics.jsonl")
    switched = [r["step"] for r in records if r["event"] == "averaging"]
    assert len(switched) == 1  # NT-ASGD switched once
    checkpoint = load_tensors(run_dir / "checkpoint.pt")
    assert checkpoint["trainer"]["averaging_since"] == switched[0]
    assert checkpoint["average"]["count"] == info["steps"] - switched[0]  # every step since, averaged
    assert any(r["event"] == "valid" and r["best"] and r["step"] > switched[0] for r in records)  # model.pt: averaged
    # The windows' lengths varied: the tokens between progress records (every 5 steps) differ within an epoch.
    train_records = [r for r in records if r["event"] == "train"]
    tokens = [b["tokens"] - a["tokens"] for a, b in zip(train_records, train_records[1:]) if a["epoch"] == b["epoch"]]
    assert len(set(tokens)) > 5  # fixed windows would give 5 × 10 × 8 = 400 each time
    # Chance is the vocabulary size (62); the floor is e^(log 10 / 7) = 1.39, only the key word being uncertain.
    # Six seeds ended between 1.43 and 1.46.
    vocab = info["vocab_size"]
    assert info["results"]["valid"]["ppl"] < 3.0 < vocab / 20
    assert info["results"]["test"]["ppl"] < 3.0
    assert info["results"]["valid"]["ppl"] == pytest.approx(info["best_valid_ppl"], rel=1e-9)  # model.pt: the best


def test_evaluate_command_reproduces_the_reported_perplexity(full_run):
    root, _, info = full_run
    result = CliRunner().invoke(app, ["evaluate", str(root / "run"), "--split", "valid", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["tokens"] == info["results"]["valid"]["tokens"]
    assert report["ppl"] == pytest.approx(info["results"]["valid"]["ppl"], rel=1e-9)


def test_resume_with_everything_on_repeats_the_straight_run(full_run):
    root, corpus, info = full_run
    straight = load_tensors(root / "run/checkpoint.pt")
    since = straight["trainer"]["averaging_since"]
    stop = (since // 10 + 5) * 10  # a validation step (no extra validation at the stop), averaging under way
    assert stop < info["steps"]
    resumed = root / "resumed"
    first = train_quietly(tiny_config(corpus, root / "cache", *ALL_ON, f"train.max_steps={stop}"), resumed)
    assert first["steps"] == stop
    assert load_tensors(resumed / "checkpoint.pt")["average"]["count"] == stop - since
    train_quietly(load_config(resumed / "config.yaml", ["train.max_steps=null"]), resumed, resume=True)
    again = load_tensors(resumed / "checkpoint.pt")
    assert again["trainer"]["step"] == straight["trainer"]["step"]  # the same window lengths: the same steps
    assert again["trainer"]["averaging_since"] == since
    assert again["trainer"]["valid_history"] == straight["trainer"]["valid_history"]
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, again["model"][name]), name
    assert again["average"]["count"] == straight["average"]["count"]
    assert all(torch.equal(a, b) for a, b in zip(straight["average"]["average"], again["average"]["average"]))
    best, best_again = load_tensors(root / "run/model.pt"), load_tensors(resumed / "model.pt")
    assert all(torch.equal(best[name], best_again[name]) for name in best)


# ---- as documented ---------------------------------------------------------------------------------------------------

def test_null_dropout_hidden_means_plain_dropout_between_layers_as_documented():
    """With dropout_hidden null, the layers run one by one (here for weight drop) get plain model.dropout between
    them, a new mask at every step, as the config documents: turning weight drop on does not change its kind."""
    torch.manual_seed(0)
    model = LanguageModel(model_config(dropout=0.5, weight_drop=0.3), 20).train()
    zero = model.rnn.between(torch.ones(6, 4, 50)) == 0
    assert zero.any()
    assert not all(torch.equal(zero[t], zero[0]) for t in range(6)), "one mask for every step: locked, not plain"


def test_a_stop_between_validations_does_not_move_the_nt_asgd_switch(full_run):
    """A run stopped by a limit between validations validates once more before it saves; that extra validation
    must not feed NT-ASGD's trigger, or the resumed run would start averaging at another step than the straight
    run (same live weights, another average)."""
    root, corpus, info = full_run
    straight = load_tensors(root / "run/checkpoint.pt")
    since = straight["trainer"]["averaging_since"]
    stop = since - 5  # between the validation before the switch and the one that switched
    resumed = root / "stopped_between"
    train_quietly(tiny_config(corpus, root / "cache", *ALL_ON, f"train.max_steps={stop}"), resumed)
    train_quietly(load_config(resumed / "config.yaml", ["train.max_steps=null"]), resumed, resume=True)
    again = load_tensors(resumed / "checkpoint.pt")
    assert all(torch.equal(tensor, again["model"][name]) for name, tensor in straight["model"].items())
    assert again["trainer"]["averaging_since"] == since
    assert again["trainer"]["valid_history"] == straight["trainer"]["valid_history"]
