import torch

from lstm_lm.config import load_config
from lstm_lm.model.language_model import LanguageModel
from lstm_lm.targets import IGNORE


def make(*overrides):
    return LanguageModel(load_config(None, list(overrides)).model, vocab_size=50)


def test_shapes_and_loss_matches_logits():
    model = make("model.embedding_size=8", "model.hidden_size=12", "model.num_layers=2").eval()
    tokens = torch.randint(50, (7, 3))
    logits, (h, c) = model(tokens, model.init_hidden(3))
    assert logits.shape == (7, 3, 50) and h.shape == c.shape == (2, 3, 12)
    targets = torch.randint(50, (7, 3))
    targets[6, 2] = IGNORE
    losses, _ = model(tokens, model.init_hidden(3), targets)
    expected = -torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    expected[6, 2] = 0
    assert torch.allclose(losses, expected, atol=1e-5)


def test_tied_weights_share_one_matrix_and_project_when_sizes_differ():
    same = make("model.embedding_size=16", "model.hidden_size=16", "model.tie_weights=true")
    assert same.decoder.weight is same.embedding.weight and same.projection is None
    untied = make("model.embedding_size=16", "model.hidden_size=16")
    assert untied.parameter_count() - same.parameter_count() == 50 * 16  # the shared matrix counts once
    projected = make("model.embedding_size=16", "model.hidden_size=24", "model.tie_weights=true")
    assert projected.projection.weight.shape == (16, 24)
    assert projected.decoder.weight is projected.embedding.weight


def test_uniform_initialization_bounds_every_weight():
    model = make("model.init=uniform", "model.init_range=0.05")
    assert max(p.abs().max().item() for p in model.parameters()) <= 0.05
    default = make("model.init=default")
    assert default.embedding.weight.abs().max().item() > 1.0  # PyTorch's N(0, 1) embeddings
