import pytest
import torch

from lstm_lm.config import load_config
from lstm_lm.errors import UserError
from lstm_lm.model.language_model import LanguageModel
from lstm_lm.rundir.checkpoint import load_model_weights, load_tensors, model_weights, save_tensors


def model(*overrides):
    return LanguageModel(load_config(None, ["model.embedding_size=8", "model.hidden_size=8", *overrides]).model, 30)


def test_tied_weights_round_trip_through_a_file(tmp_path):
    torch.manual_seed(0)
    original = model("model.tie_weights=true")
    save_tensors(tmp_path / "model.pt", model_weights(original))
    saved = load_tensors(tmp_path / "model.pt")
    assert "decoder.weight" not in saved  # stored once, under the embedding's name
    torch.manual_seed(1)
    restored = model("model.tie_weights=true")
    load_model_weights(restored, saved, tmp_path / "model.pt")
    assert restored.decoder.weight is restored.embedding.weight
    tokens = torch.randint(30, (5, 2))
    assert torch.equal(original.eval()(tokens, original.init_hidden(2))[0],
                       restored.eval()(tokens, restored.init_hidden(2))[0])


def test_weights_that_do_not_match_the_config_name_the_file(tmp_path):
    save_tensors(tmp_path / "model.pt", model_weights(model()))
    with pytest.raises(UserError, match=r"model.pt: weights do not match the config: .*size mismatch"):
        load_model_weights(model("model.hidden_size=9"), load_tensors(tmp_path / "model.pt"), tmp_path / "model.pt")
    with pytest.raises(UserError, match=r"model.pt: weights do not match the config \(missing"):
        load_model_weights(model("model.num_layers=3"), load_tensors(tmp_path / "model.pt"), tmp_path / "model.pt")


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    save_tensors(tmp_path / "model.pt", model_weights(model()))
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="model.pt: cannot read checkpoint: corrupted or truncated"):
        load_tensors(tmp_path / "model.pt")
