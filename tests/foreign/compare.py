"""Whether an imported model computes what the original module does: the log-probabilities of both on the same
random windows, the hidden state carried from one window to the next."""

from __future__ import annotations

from pathlib import Path

import torch

from lstm_lm.config import config_from_dict
from lstm_lm.foreign.import_example import ImportedModel
from lstm_lm.model import LanguageModel

from .example_model import RNNModel


def as_language_model(imported: ImportedModel) -> LanguageModel:
    config = config_from_dict({"model": imported.model_config}, "import")
    model = LanguageModel(config.model, len(imported.tokens))
    model.load_state_dict(imported.state_dict, strict=True)
    return model.eval()


@torch.no_grad()
def largest_difference(original: RNNModel, imported: LanguageModel, windows: int = 2, steps: int = 7,
                       batch: int = 3) -> float:
    """The largest |log p| difference over every token of `windows` (steps, batch) windows of random ids."""
    original.eval()
    generator = torch.Generator().manual_seed(0)
    theirs_hidden, ours_hidden = original.init_hidden(batch), imported.init_hidden(batch)
    largest = 0.0
    for _ in range(windows):
        tokens = torch.randint(0, original.ntoken, (steps, batch), generator=generator)
        theirs, theirs_hidden = original(tokens, theirs_hidden)  # (T·B, V)
        logits, ours_hidden = imported(tokens, ours_hidden)  # (T, B, V)
        ours = torch.log_softmax(logits, dim=-1).view(-1, original.ntoken)
        largest = max(largest, float((theirs - ours).abs().max()))
    return largest


def write_vocab(path: Path, size: int) -> Path:
    """A vocabulary file of `size` tokens with the two lstm-lm needs."""
    tokens = ["<eos>", "<unk>"] + [f"w{i}" for i in range(size - 2)]
    path.write_text("".join(f"{token}\n" for token in tokens), encoding="utf-8")
    return path
