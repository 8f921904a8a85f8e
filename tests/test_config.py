from pathlib import Path

import pytest

from lstm_lm.config import load_config
from lstm_lm.errors import ConfigError
from tests.conftest import REPO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_and_typed_overrides():
    config = load_config(None, ["train.lr=1e-3", "model.num_layers=3", "model.tie_weights=true",
                                "train.max_steps=null", "tokenizer.kind=char"])
    assert config.train.lr == 0.001 and isinstance(config.train.lr, float)
    assert config.model.num_layers == 3 and isinstance(config.model.num_layers, int)
    assert config.model.tie_weights is True
    assert config.train.max_steps is None
    assert config.tokenizer.kind == "char"
    assert config.model.hidden_size == 200  # untouched default


def test_yaml_values_and_override_precedence(tmp_path):
    path = write(tmp_path, "model:\n  hidden_size: 64\ntrain:\n  lr: 1e-2\n")
    config = load_config(path, ["model.hidden_size=128"])
    assert config.model.hidden_size == 128
    assert config.train.lr == pytest.approx(0.01)  # YAML reads 1e-2 as a string; it is still a float here


@pytest.mark.parametrize("overrides, message", [
    (["model.hiden_size=3"], "unknown key 'model.hiden_size' (did you mean 'hidden_size'?); valid keys of model:"),
    (["modle.hidden_size=3"], "unknown section 'modle' (did you mean 'model'?)"),
    (["model.dropout=-0.1"], "model.dropout = -0.1 is out of range: must be >= 0 and < 1"),
    (["model.num_layers=0"], "model.num_layers = 0 is out of range: must be >= 1"),
    (["model.num_layers=two"], "model.num_layers = 'two' is not an integer"),
    (["train.lr=fast"], "train.lr = 'fast' is not a number"),
    (["tokenizer.kind=sentencepiece"], "tokenizer.kind = 'sentencepiece' is not one of word, char, bpe"),
    (["model.tie_weights=maybe"], "model.tie_weights = 'maybe' is not true or false"),
    (["train.lr"], "expected section.key=value"),
])
def test_override_errors_name_the_key_and_value(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, overrides)
    assert message in str(error.value)


def test_unknown_key_in_file_names_file_and_valid_keys(tmp_path):
    path = write(tmp_path, "train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    text = str(error.value)
    assert text.startswith(f"{path}: unknown key 'train.learning_rate'")
    assert "valid keys of train: batch_size, bptt, variable_bptt, lr" in text


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "model:\n  hidden_size: 64\n  dropout: [0.1\ntrain:\n  lr: 1\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}:4: invalid YAML")


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_shipped_config_loads(name):
    config = load_config(REPO / "configs" / name)
    assert Path(REPO / config.data.path).exists()
