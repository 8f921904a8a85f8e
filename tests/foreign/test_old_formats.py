"""Importing checkpoints in the forms torch 0.3 and 0.4 wrote (tests/foreign/old_torch.py), the forms of the
colorlessgreenRNNs models, which torch 2.13's own loader no longer reads."""

from __future__ import annotations

import pytest
import torch

from lstm_lm.foreign.import_example import import_example

from .compare import as_language_model, largest_difference, write_vocab
from .example_model import RNNModel
from .old_torch import OldCheckpoint

VOCAB = 19


@pytest.mark.parametrize("era", ["0.3", "0.4"])
@pytest.mark.parametrize("rnn_type, tied", [("LSTM", True), ("GRU", False), ("RNN_TANH", True), ("RNN_RELU", False)])
def test_old_checkpoints_import_exactly(tmp_path, era, rnn_type, tied):
    torch.manual_seed(3)
    original = RNNModel(rnn_type, VOCAB, 8 if tied else 5, 8, nlayers=2, tie_weights=tied)
    path = tmp_path / "old.pt"
    path.write_bytes(OldCheckpoint(original, era).file_bytes())

    imported = import_example(path, vocab=write_vocab(tmp_path / "vocab.txt", VOCAB))

    assert imported.model_config["cell"] == rnn_type.lower()
    assert imported.model_config["tie_weights"] == tied
    assert largest_difference(original, as_language_model(imported)) < 1e-5


def test_recurrent_weights_at_their_offsets_in_one_cudnn_buffer(tmp_path):
    """torch 0.3 on a GPU: every recurrent weight is a view at its own offset into one storage."""
    torch.manual_seed(4)
    original = RNNModel("LSTM", VOCAB, 6, 7, nlayers=2)
    checkpoint = OldCheckpoint(original, "0.3")
    assert len(checkpoint.flat_offsets) == 8 and len(set(checkpoint.flat_offsets.values())) == 8
    path = tmp_path / "old.pt"
    path.write_bytes(checkpoint.file_bytes())
    weights = import_example(path, vocab=write_vocab(tmp_path / "vocab.txt", VOCAB)).state_dict
    for name, parameter in original.rnn.named_parameters():
        assert torch.equal(weights[f"rnn.{name}"], parameter), name
