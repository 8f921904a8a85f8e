"""Importing word_language_model checkpoints saved by today's torch in both of its formats, for every cell type,
tied and untied: lstm-lm's model afterwards gives the original module's log-probabilities."""

from __future__ import annotations

import pytest
import torch

from lstm_lm.foreign.import_example import import_example

from .compare import as_language_model, largest_difference, write_vocab
from .example_model import RNNModel

CELLS = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}
VOCAB = 23


def example(rnn_type: str, tied: bool) -> RNNModel:
    torch.manual_seed(len(rnn_type) + tied)
    # untied, the embedding (6) and the hidden layers (8) differ, as the example allows
    return RNNModel(rnn_type, VOCAB, 8 if tied else 6, 8, nlayers=2, dropout=0.3, tie_weights=tied)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("rnn_type", list(CELLS))
def test_imported_model_gives_the_originals_log_probabilities(tmp_path, rnn_type, tied, zip_format):
    original = example(rnn_type, tied)
    path = tmp_path / "model.pt"
    torch.save(original, path, _use_new_zipfile_serialization=zip_format)
    with path.open("rb") as file:
        assert (file.read(2) == b"PK") == zip_format  # the format asked for is the one written

    imported = import_example(path, vocab=write_vocab(tmp_path / "vocab.txt", VOCAB))

    assert imported.model_config == {"cell": CELLS[rnn_type], "embedding_size": 8 if tied else 6, "hidden_size": 8,
                                     "num_layers": 2, "tie_weights": tied, "dropout": pytest.approx(0.3),
                                     "softmax": "full"}
    weights = imported.state_dict
    assert (weights["embedding.weight"] is weights["decoder.weight"]) == tied
    assert torch.equal(weights["decoder.bias"], original.decoder.bias)
    assert torch.equal(weights["rnn.weight_hh_l1"], original.rnn.weight_hh_l1)  # same names, same gate order
    assert largest_difference(original, as_language_model(imported)) < 1e-5


def test_imported_tensors_are_their_own_memory(tmp_path):
    """Two tensors of the file never share memory, nor with the bytes read, except a tied weight with itself."""
    path = tmp_path / "model.pt"
    torch.save(example("LSTM", tied=False), path)
    weights = import_example(path, vocab=write_vocab(tmp_path / "vocab.txt", VOCAB)).state_dict
    pointers = [tensor.untyped_storage().data_ptr() for tensor in weights.values()]
    assert len(set(pointers)) == len(pointers)
    assert all(tensor.is_contiguous() and tensor.device.type == "cpu" for tensor in weights.values())


def test_a_recurrent_layer_without_biases_imports_as_zero_biases(tmp_path):
    """The example's first versions built nn.LSTM(..., bias=False)."""
    original = example("LSTM", tied=False)
    original.rnn = torch.nn.LSTM(6, 8, 2, bias=False)
    path = tmp_path / "model.pt"
    torch.save(original, path)
    imported = import_example(path, vocab=write_vocab(tmp_path / "vocab.txt", VOCAB))
    assert not imported.state_dict["rnn.bias_ih_l0"].any()
    assert largest_difference(original, as_language_model(imported)) < 1e-5


def test_a_half_precision_checkpoint_imports_widened_to_fp32(tmp_path):
    original = example("GRU", tied=True).half()
    path = tmp_path / "model.pt"
    torch.save(original, path)
    imported = import_example(path, vocab=write_vocab(tmp_path / "vocab.txt", VOCAB))
    assert imported.state_dict["embedding.weight"].dtype == torch.float32
    assert imported.state_dict["embedding.weight"] is imported.state_dict["decoder.weight"]  # still tied
    assert largest_difference(original.float(), as_language_model(imported)) < 1e-5
