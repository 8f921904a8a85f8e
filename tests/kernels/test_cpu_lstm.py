import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence

from lstm_lm.kernels.cpu_lstm import LSTMLayerFunction
from lstm_lm.model import fast_lstm
from lstm_lm.model.fast_lstm import FastLSTM
from lstm_lm.model.regularization import weight_dropped
from tests.conftest import needs_cpu_bf16


@pytest.fixture(autouse=True)
def small_layers_take_the_written_loop(monkeypatch):
    """The tests' 8-unit layers would run oneDNN's kernel (fast_lstm.MIN_HIDDEN); here they take the loop."""
    monkeypatch.setattr(fast_lstm, "MIN_HIDDEN", 1)


def outputs_and_gradients(rnn: nn.Module, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor],
                          precision: torch.dtype | None) -> list[torch.Tensor]:
    """Outputs, final state and the gradients of inputs, initial state and every parameter, from a loss that
    reads all three outputs."""
    rnn.zero_grad()
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, *state)]
    with torch.autocast("cpu", dtype=precision or torch.float32, enabled=precision is not None):
        out, (h, c) = rnn(leaves[0], tuple(leaves[1:]))
    (out.float().pow(2).sum() + 3 * h.float().sum() + 2 * c.float().sum()).backward()
    return [out.float(), h.float(), c.float(), *(leaf.grad for leaf in leaves),
            *(p.grad.clone() for p in rnn.parameters())]


def lstm_pair(layers: int, dropout: float = 0.0) -> tuple[nn.LSTM, FastLSTM]:
    torch.manual_seed(0)
    reference = nn.LSTM(6, 8, layers, dropout=dropout)
    fast = FastLSTM(6, 8, layers, dropout=dropout)
    fast.load_state_dict(reference.state_dict())
    return reference, fast


def test_written_loop_equals_nn_lstm_in_fp32():
    # The layer function in fp32, two layers chained by hand with a carried state: outputs and every gradient.
    torch.manual_seed(1)
    reference, _ = lstm_pair(layers=1)
    x, h0, c0 = torch.randn(7, 3, 6), torch.randn(1, 3, 8), torch.randn(1, 3, 8)
    expected = outputs_and_gradients(reference, x, (h0, c0), None)

    class Written(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = reference

        def forward(self, inputs, state):
            out, h, c = LSTMLayerFunction.apply(inputs, state[0][0], state[1][0], *self.inner.parameters())
            return out, (h[None], c[None])

    actual = outputs_and_gradients(Written(), x, (h0, c0), None)
    for a, e in zip(actual, expected):
        assert torch.allclose(a, e, atol=1e-5), (a - e).abs().max()


def test_layer_function_gradcheck_in_float64():
    torch.manual_seed(2)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    h0, c0 = (torch.randn(2, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))
    weights = [torch.randn(shape, dtype=torch.float64, requires_grad=True) * 0.5
               for shape in ((20, 3), (20, 5), (20,), (20,))]
    weights = [w.detach().requires_grad_(True) for w in weights]
    assert torch.autograd.gradcheck(LSTMLayerFunction.apply, (x, h0, c0, *weights))


@pytest.fixture
def loop_calls(monkeypatch) -> list[int]:
    """One entry per LSTMLayerFunction call (a layer run by the written loop) from here on."""
    calls: list[int] = []
    original = LSTMLayerFunction.apply
    monkeypatch.setattr(LSTMLayerFunction, "apply", lambda *args: calls.append(1) or original(*args))
    return calls


def test_bf16_training_takes_the_written_loop_and_matches_fp32(loop_calls):
    reference, fast = lstm_pair(layers=2)
    torch.manual_seed(3)
    x, state = torch.randn(9, 4, 6), (torch.randn(2, 4, 8), torch.randn(2, 4, 8))
    expected = outputs_and_gradients(reference, x, state, None)
    actual = outputs_and_gradients(fast, x, state, torch.bfloat16)
    assert len(loop_calls) == 2  # one per layer
    for a, e in zip(actual, expected):
        assert a.dtype == torch.float32
        assert torch.allclose(a, e, atol=0.03 * e.abs().max().item() + 1e-3)


@needs_cpu_bf16  # the paths it checks run oneDNN's bf16 LSTM
def test_nn_lstm_runs_where_the_written_loop_does_not_pay(monkeypatch):
    calls = []
    monkeypatch.setattr(LSTMLayerFunction, "apply", lambda *args: calls.append(1))
    _, fast = lstm_pair(layers=1)
    x = torch.randn(5, 3, 6)
    fast(x)  # fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            fast(x)  # evaluation
        fast(torch.randn(5, fast_lstm.MAX_BATCH + 1, 6))  # a large batch: oneDNN's fused kernel is faster
        fast(pack_padded_sequence(x, [5, 4, 2]))
        monkeypatch.setattr(fast_lstm, "MIN_HIDDEN", 9)
        fast(x)  # a layer narrower than MIN_HIDDEN
    assert calls == []


def test_written_loop_drops_between_layers_in_training_only():
    _, fast = lstm_pair(layers=2, dropout=1.0)
    first, second = torch.randn(2, 5, 3, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        top_first, top_second = fast(first)[0], fast(second)[0]
        assert torch.equal(top_first, top_second)  # the top layer read zeros both times
        fast.eval()
        with torch.enable_grad():
            assert not torch.equal(fast(first)[0], fast(second)[0])


@pytest.mark.parametrize("batch", [1, fast_lstm.MAX_BATCH])
def test_written_loop_state_carries_across_windows(batch):
    # Two windows with the state carried over equal one window of both: the final h and c are the right ones.
    reference, fast = lstm_pair(layers=2)
    x = torch.randn(10, batch, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        whole, _ = fast(x)
        first, state = fast(x[:6])
        second, _ = fast(x[6:], state)
    assert torch.allclose(torch.cat([first, second]).float(), whole.float(), atol=2e-2)
    assert torch.allclose(whole.float(), reference(x)[0], atol=3e-2)


def test_written_loop_under_weight_drop_reaches_only_the_kept_weights(loop_calls):
    # LayerStack's weight drop hands the layer masked weights through functional_call; the loop must read those.
    _, fast = lstm_pair(layers=1)
    torch.manual_seed(5)
    weights = weight_dropped(fast, 0.5, contiguous=False)
    dropped = weights["weight_hh_l0"].detach() == 0
    assert dropped.any() and not dropped.all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = functional_call(fast, weights, (torch.randn(6, 3, 6),))
    out.float().sum().backward()
    assert loop_calls == [1]
    assert torch.all(fast.weight_hh_l0.grad[dropped] == 0)
    assert fast.weight_hh_l0.grad[~dropped].abs().sum() > 0
