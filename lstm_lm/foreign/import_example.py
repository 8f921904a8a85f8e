"""`lstm-lm import`'s library function: a word_language_model checkpoint and its vocabulary, checked against each
other, as what an lstm-lm run directory needs (the `model` config section, a state dict, the id -> token list)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from .pytorch_example import ExampleModel, read_example_model
from .to_lstm_lm import model_section, state_dict
from .vocabulary import check_vocabulary_size, corpus_vocabulary, vocab_file

# lstm-lm's word tokenizer maps unknown words to `<unk>` and ends lines with `<eos>`: it needs both in the vocabulary.
REQUIRED_TOKENS = ("<unk>", "<eos>")


@dataclass
class ImportedModel:
    model_config: dict[str, Any]  # the `model` section of the run's config
    state_dict: dict[str, torch.Tensor]  # for LanguageModel(config.model, len(tokens)), loaded strictly
    tokens: list[str]  # id -> token, in the embedding's row order
    original: ExampleModel


def import_example(model_path: Path, vocab: Path | None = None, corpus: Path | None = None) -> ImportedModel:
    """Read the checkpoint, then its vocabulary from a one-token-per-line file (`vocab`) or rebuilt from the corpus
    it was trained on (`corpus`, the example's --data directory): exactly one of the two."""
    if (vocab is None) == (corpus is None):
        raise UserError("import: give the vocabulary as --vocab VOCAB.txt or --corpus DIR (one of the two): the "
                        "example saves none with its model")
    model = read_example_model(model_path)
    if vocab is not None:
        tokens, source, unit = vocab_file(vocab), str(vocab), "lines"
    else:
        tokens, source, unit = corpus_vocabulary(corpus), f"the corpus in {corpus}", "distinct words (<eos> included)"
    check_vocabulary_size(tokens, model.vocab_size, model_path, source, unit)
    missing = [token for token in REQUIRED_TOKENS if token not in tokens]
    if missing:
        raise UserError(f"{source}: has no {' and no '.join(missing)}, which lstm-lm's word tokenizer needs (unknown "
                        f"words become <unk>, each line ends in <eos>)")
    return ImportedModel(model_config=model_section(model), state_dict=state_dict(model), tokens=tokens,
                         original=model)
