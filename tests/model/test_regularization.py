"""The AWD-LSTM regularizers of the model (Merity et al. 2018): dropout masks, locked and embedding dropout,
weight drop, per-layer sizes and the AR/TAR penalty. Their training side is tests/train/test_awd_training.py."""

import warnings

import pytest
import torch
from torch import nn
from torch.func import functional_call

import lstm_lm.model.stack as stack_module
from lstm_lm.config import ModelConfig, load_config
from lstm_lm.errors import ConfigError
from lstm_lm.model.language_model import LanguageModel
from lstm_lm.model.regularization import (LockedDropout, PlainDropout, activation_penalty, embedding_dropout,
                                          is_recurrent_matrix, keep_mask, plain_dropout, weight_dropped)
from lstm_lm.model.stack import LayerStack

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


# ---- NT-ASGD ---------------------------------------------------------------------------------------------------------

# ---- variable-length BPTT --------------------------------------------------------------------------------------------

# ---- all of them together --------------------------------------------------------------------------------------------

# ---- as documented ---------------------------------------------------------------------------------------------------

def test_null_dropout_hidden_means_plain_dropout_between_layers_as_documented():
    """With dropout_hidden null, the layers run one by one (here for weight drop) get plain model.dropout between
    them, a new mask at every step, as the config documents: turning weight drop on does not change its kind."""
    torch.manual_seed(0)
    model = LanguageModel(model_config(dropout=0.5, weight_drop=0.3), 20).train()
    zero = model.rnn.between(torch.ones(6, 4, 50)) == 0
    assert zero.any()
    assert not all(torch.equal(zero[t], zero[0]) for t in range(6)), "one mask for every step: locked, not plain"
