import pytest
import torch

from lstm_lm.config import load_config
from lstm_lm.errors import ConfigError
from lstm_lm.model.language_model import LanguageModel
from lstm_lm.model.softmax import AdaptiveSoftmax
from lstm_lm.targets import IGNORE
from tests.conftest import tiny_config, train_quietly


@pytest.mark.parametrize("div_value", [1.0, 2.0])
def test_adaptive_log_probs_are_a_distribution_and_match_targets(div_value):
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(50, 16)
    softmax = AdaptiveSoftmax(16, 50, [10, 30], div_value, tied_embedding=embedding)
    hidden = torch.randn(40, 16)
    full = softmax.log_probs(hidden)  # (40, 50)
    assert torch.allclose(full.logsumexp(-1), torch.zeros(40), atol=1e-5)
    targets = torch.randint(50, (40,))
    assert torch.allclose(softmax.target_log_probs(hidden, targets), full.gather(1, targets[:, None]).squeeze(1),
                          atol=1e-5)


def tied_softmax_and_inputs(seed: int) -> tuple[AdaptiveSoftmax, torch.Tensor, torch.Tensor]:
    """A tied adaptive softmax over 50 words (cut-offs 10 and 30, div_value 2), 40 hidden rows and targets."""
    torch.manual_seed(seed)
    softmax = AdaptiveSoftmax(16, 50, [10, 30], 2.0, tied_embedding=torch.nn.Embedding(50, 16))
    return softmax, torch.randn(40, 16, requires_grad=True), torch.randint(50, (40,))


def test_padded_tail_rows_change_neither_values_nor_gradients():
    # 40 targets put 1-39 rows in each tail, never a multiple of the padding bucket: the repeated rows must drop out.
    softmax, hidden, targets = tied_softmax_and_inputs(seed=0)
    assert 0 < (targets >= 10).sum() < 40
    softmax.target_log_probs(hidden, targets).sum().backward()
    padded_grads = [hidden.grad.clone()] + [p.grad.clone() for p in softmax.parameters()]
    hidden.grad = None
    softmax.zero_grad()
    softmax.log_probs(hidden).gather(1, targets[:, None]).sum().backward()
    exact_grads = [hidden.grad] + [p.grad for p in softmax.parameters()]
    for padded, exact in zip(padded_grads, exact_grads):
        assert torch.allclose(padded, exact, atol=1e-5)


def test_adaptive_target_log_probs_in_bf16_stay_close_to_fp32():
    softmax, hidden, targets = tied_softmax_and_inputs(seed=1)
    results = []
    for enabled in (False, True):
        hidden.grad = None
        softmax.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            log_probs = softmax.target_log_probs(hidden, targets)
        log_probs.sum().backward()
        assert log_probs.dtype == torch.float32
        results.append([log_probs.detach(), hidden.grad.clone(), *(p.grad.clone() for p in softmax.parameters())])
    for exact, bf16 in zip(*results):
        assert torch.allclose(bf16, exact, atol=0.03 * exact.abs().max().item())


def test_adaptive_tying_shares_the_embedding_rows():
    embedding = torch.nn.Embedding(50, 16)
    tied = AdaptiveSoftmax(16, 50, [10, 30], 1.0, tied_embedding=embedding)
    assert tied.head_rows().data_ptr() == embedding.weight.data_ptr()
    assert tied.tail_rows(0).data_ptr() == embedding.weight[10:].data_ptr()
    reduced = AdaptiveSoftmax(16, 50, [10, 30], 4.0, tied_embedding=embedding)
    assert reduced.tail_rows(0).shape == (20, 4)  # projected to 16 / 4 units: its own rows


def test_model_with_adaptive_softmax_gives_losses_and_ignores_padding():
    config = load_config(None, ["model.softmax=adaptive", "model.adaptive_cutoffs=[10, 30]",
                                "model.embedding_size=8", "model.hidden_size=8", "model.tie_weights=true"]).model
    model = LanguageModel(config, 50).eval()
    tokens, targets = torch.randint(50, (6, 3)), torch.randint(50, (6, 3))
    targets[5, 1] = IGNORE
    log_probs, _ = model(tokens, model.init_hidden(3))
    losses, _ = model(tokens, model.init_hidden(3), targets)
    expected = -log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    expected[5, 1] = 0
    assert torch.allclose(losses, expected, atol=1e-5)


def test_bad_cutoffs_name_the_key():
    config = load_config(None, ["model.softmax=adaptive", "model.adaptive_cutoffs=[10, 60]"]).model
    with pytest.raises(ConfigError, match="model.adaptive_cutoffs: cutoffs \\[10, 60\\] must increase"):
        LanguageModel(config, 50)
    with pytest.raises(ConfigError, match="is not a list of ints"):
        load_config(None, ["model.adaptive_cutoffs=many"])


def test_adaptive_model_learns(tmp_path, synthetic_corpus):
    config = tiny_config(synthetic_corpus, tmp_path / "cache", "model.softmax=adaptive",
                         "model.adaptive_cutoffs=[12, 40]", "model.tie_weights=true", "train.epochs=10")
    info = train_quietly(config, tmp_path / "run")
    assert info["results"]["test"]["loss"] < 0.6  # the bar the full softmax clears (in fewer epochs)
