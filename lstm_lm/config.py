"""Typed, validated configuration: one dataclass per concern, loaded from YAML plus `section.key=value` overrides.

Every field carries its documentation (`help`) and its bounds, so validation, error messages and the README's key
reference all come from the same place.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from .errors import ConfigError


def option(default: Any, help: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> Any:
    """A config field with its documentation and inclusive (or open) numeric bounds."""
    metadata = {"help": help, "low": low, "high": high, "low_open": low_open, "high_open": high_open}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class DataConfig:
    """Where the corpus is and how to read it."""

    path: str = option("data/ptb", "Corpus: a directory with train/valid/test files (PTB `ptb.train.txt` or "
                       "WikiText `train.txt`/`wiki.train.tokens` names), or one text file split by fractions.")
    valid_fraction: float = option(0.05, "Single-file corpora: share of the text (taken from the end, before "
                                   "the test share) used for validation.", low=0, high=0.5, low_open=True)
    test_fraction: float = option(0.05, "Single-file corpora: share of the text at the very end used for test.",
                                  low=0, high=0.5, low_open=True)
    encoding: str = option("utf-8", "Text encoding of the corpus files.")
    errors: Literal["strict", "replace"] = option(
        "strict", "Bytes that are not valid in data.encoding. strict: stop with an error naming the file and "
        "the byte offset; replace: decode them as U+FFFD and say so in one warning line per file.")
    cache: bool = option(True, "Cache token ids on disk, keyed by corpus content and tokenizer settings.")
    cache_dir: str = option("", "Where the token-id cache lives; empty means $XDG_CACHE_HOME/lstm-lm "
                            "(~/.cache/lstm-lm).")


@dataclass
class TokenizerConfig:
    """How text becomes token ids."""

    kind: Literal["word", "char", "bpe"] = option("word", "word: whitespace split with `<eos>` at each line end; "
                                                  "char: characters or bytes; bpe: byte-pair encoding "
                                                  "trained on the training split.")
    lowercase: bool = option(False, "Lower-case all text before tokenizing.")
    max_size: Optional[int] = option(None, "word: largest vocabulary, specials included (most frequent types kept, "
                                     "the rest become `<unk>`); null keeps every type.", low=3)
    min_freq: int = option(1, "word: types seen fewer times in training become `<unk>`.", low=1)
    char_unit: Literal["unicode", "byte"] = option("unicode", "char: Unicode code points or UTF-8 bytes.")
    bpe_vocab_size: int = option(8000, "bpe: target vocabulary size, specials included.", low=16)


@dataclass
class ModelConfig:
    """The network: embedding, stacked LSTM layers, dropout, decoder."""

    embedding_size: int = option(200, "Size of the token embeddings.", low=1)
    hidden_size: int = option(200, "Units per recurrent layer (unless hidden_sizes gives one per layer).", low=1)
    num_layers: int = option(2, "Number of stacked recurrent layers.", low=1)
    hidden_sizes: list[int] = option([], "Units of each recurrent layer, bottom first, instead of hidden_size for "
                                     "all (AWD-LSTM: [1150, 1150, 400], the last sized to the embedding so that "
                                     "tying needs no projection); one size per layer. Empty: hidden_size.", low=1)
    dropout: float = option(0.0, "Plain dropout (a new mask at every step) on the embeddings, between recurrent "
                            "layers and before the decoder, wherever a locked dropout_* below is null.",
                            low=0, high=1, high_open=True)
    dropout_input: Optional[float] = option(
        None, "Locked (variational) dropout on the embedding output: one mask per sequence, the same at every "
        "step (AWD-LSTM: 0.4 on PTB, 0.65 on WikiText-2). null: plain `dropout` there.", low=0, high=1,
        high_open=True)
    dropout_hidden: Optional[float] = option(
        None, "Locked dropout between recurrent layers (AWD-LSTM: 0.3 on PTB in the paper, 0.25 in the authors' "
        "PTB command; 0.2 on WikiText-2); above 0 runs the layers one by one. null: plain `dropout` there.",
        low=0, high=1, high_open=True)
    dropout_output: Optional[float] = option(
        None, "Locked dropout on the last layer's output (AWD-LSTM: 0.4). null: plain `dropout` there.",
        low=0, high=1, high_open=True)
    dropout_embedding: float = option(
        0.0, "Embedding dropout: whole words dropped from the embedding matrix, at every occurrence in the batch, "
        "the kept rows rescaled (AWD-LSTM: 0.1).", low=0, high=1, high_open=True)
    weight_drop: float = option(
        0.0, "DropConnect on each layer's hidden-to-hidden matrix: one mask per window, shared by its time steps "
        "(AWD-LSTM: 0.5); runs the layers one by one, each still a fused kernel.", low=0, high=1, high_open=True)
    tie_weights: bool = option(False, "Share the embedding matrix with the decoder (Press & Wolf 2017); a "
                               "projection is added when the last layer's size differs from embedding_size.")
    softmax: Literal["full", "adaptive"] = option(
        "full", "full: one linear decoder over the vocabulary; adaptive: the adaptive softmax of Grave et al. "
        "(2017), much faster for large vocabularies, with exact log-probabilities.")
    adaptive_cutoffs: list[int] = option([2000, 10000], "adaptive: where the frequency-sorted vocabulary is "
                                         "cut into the shortlist and tail clusters.")
    adaptive_div_value: float = option(4.0, "adaptive: each tail cluster projects to hidden / div_value**i units.",
                                       low=1)
    init: Literal["uniform", "default"] = option("uniform", "uniform: every weight from U(-init_range, "
                                                 "init_range) as in Zaremba et al.; default: PyTorch's own.")
    init_range: float = option(0.1, "Half-width of the uniform initialization.", low=0, low_open=True)
    cell: Literal["lstm", "lstm_explicit", "lstm_peephole", "lstm_coupled", "gru", "rnn_tanh",
                  "rnn_relu"] = option(
        "lstm", "The recurrent cell. lstm: PyTorch's fused LSTM (cuDNN on GPU); lstm_explicit: the same LSTM "
        "written out from its gate equations (lstm_lm/model/cells.py); lstm_peephole: gates also see the cell state "
        "(Gers & Schmidhuber 2000); lstm_coupled: input and forget gates coupled, input = 1 - forget; gru, "
        "rnn_tanh, rnn_relu: PyTorch's fused GRU and plain RNNs.")
    forget_bias: Optional[float] = option(None, "LSTM cells: initial forget-gate bias (1.0 is common: the cell "
                                          "keeps its memory at the start of training); null leaves the "
                                          "initialization alone.")


@dataclass
class TrainConfig:
    """The optimization: truncated BPTT, optimizer, schedule, limits, evaluation and logging."""

    batch_size: int = option(20, "Parallel streams of text per step.", low=1)
    bptt: int = option(35, "Steps of backpropagation through time per window.", low=1)
    variable_bptt: bool = option(
        False, "Draw each window's length around bptt (AWD-LSTM: bptt with probability 0.95, else bptt / 2, plus "
        "normal noise of sd 5; at least 5, at most bptt + 40), so that windows do not always start at the same "
        "tokens; lr is scaled by length / bptt, as AWD-LSTM scales its SGD steps, for every optimizer (but not "
        "under loss_reduction time_sum, whose loss grows with the length already).")
    lr: float = option(1.0, "Initial learning rate.", low=0, low_open=True)
    optimizer: Literal["sgd", "adamw", "nt_asgd"] = option(
        "sgd", "sgd: plain SGD as in Zaremba et al.; adamw: AdamW; nt_asgd: SGD until validation stops improving "
        "(see nonmono), then SGD with the weights averaged over the steps since, validated and saved averaged "
        "(AWD-LSTM, with lr_schedule constant; another schedule goes on changing lr).")
    nonmono: int = option(5, "nt_asgd: start averaging at a validation worse than the best of those before the "
                          "last `nonmono` validations (AWD-LSTM: 5).", low=1)
    ar_alpha: float = option(0.0, "Activation regularization: adds alpha × mean square of the last layer's "
                             "outputs after their dropout to the loss (AWD-LSTM: 2, with the mean loss; a "
                             "time_sum loss is about bptt times larger beside it).", low=0)
    tar_beta: float = option(0.0, "Temporal activation regularization: adds beta × mean square of the change of "
                             "the last layer's outputs (before dropout) from one step to the next (AWD-LSTM: 1).",
                             low=0)
    weight_decay: float = option(0.0, "Weight decay (decoupled for AdamW, L2 for SGD).", low=0)
    loss_reduction: Literal["mean", "time_sum"] = option(
        "mean", "mean: the loss is averaged over every token of the window; time_sum: summed over the window's "
        "time steps and averaged over the batch, as in Zaremba et al.'s code, whose lr 1 and clip 5 assume it.")
    clip: float = option(5.0, "Clip the global gradient norm to this value; 0 disables clipping.", low=0)
    epochs: int = option(10, "Passes over the training split.", low=1)
    max_steps: Optional[int] = option(None, "Stop after this many optimizer steps in all (null: no limit).",
                                      low=1)
    max_minutes: Optional[float] = option(None, "Stop after this many minutes of wall time (null: no limit).",
                                          low=0, low_open=True)
    seed: int = option(1, "Seed for weights, dropout and sampling; CPU runs with the same seed repeat exactly.")
    lr_schedule: Literal["plateau", "epoch_decay", "cosine", "constant"] = option(
        "plateau", "plateau: multiply lr by lr_decay when validation perplexity stops improving; epoch_decay: "
        "multiply by lr_decay every epoch after decay_start_epoch (Zaremba et al.); cosine: from lr down to 0 "
        "along half a cosine, updated every step, over the planned steps or, under max_minutes, the planned "
        "time, whichever ends first (for a fixed budget; with a time limit the rates depend on the clock); "
        "constant.")
    lr_decay: float = option(0.25, "Factor applied to lr by the schedule.", low=0, high=1, low_open=True)
    decay_start_epoch: int = option(4, "epoch_decay: epochs trained at the full rate before decaying.", low=0)
    eval_every_steps: Optional[int] = option(None, "Also validate every this many steps (null: only at the "
                                             "end of each epoch).", low=1)
    eval_batch_size: int = option(10, "Parallel streams during evaluation.", low=1)
    log_every_steps: int = option(50, "Steps between progress records in metrics.jsonl.", low=1)
    checkpoint_every_steps: Optional[int] = option(
        None, "Also write checkpoint.pt every this many steps, so that a killed run loses at most that many "
        "(null: at each validation and epoch end only).", low=1)
    keep_checkpoints: int = option(
        1, "Checkpoints kept: checkpoint.pt (the latest) and up to this many minus one older ones as "
        "checkpoint-STEP.pt. Resume falls back to the newest one that loads when the latest is damaged.", low=1)
    max_bad_steps: int = option(
        5, "A step whose loss (or gradient norm) is NaN or infinite is skipped and counted; after this many in a "
        "row the run restores the last checkpoint and multiplies lr by bad_steps_lr_factor.", low=1)
    bad_steps_lr_factor: float = option(
        0.5, "Factor applied to lr each time too many bad steps in a row restore the last checkpoint.",
        low=0, high=1, low_open=True, high_open=True)
    device: Literal["auto", "cpu", "cuda"] = option("auto", "auto picks CUDA when present.")
    precision: Literal["fp32", "bf16", "fp16", "auto"] = option(
        "fp32", "Autocast precision for training and evaluation; weights and optimizer state stay fp32. bf16 "
        "needs bf16 units (CPUs with AMX or AVX512-BF16, GPUs from Ampere on) and is refused elsewhere; fp16 "
        "(with loss scaling) needs CUDA. auto picks bf16 where it runs, fp16 on GPUs with tensor cores but no bf16 "
        "(V100, T4), else fp32.")


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "model": ModelConfig,
    "train": TrainConfig,
}


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or start from the defaults), apply `section.key=value` overrides, validate."""
    raw: dict[str, Any] = {} if path is None else read_yaml(Path(path))
    where = str(path) if path is not None else "config"
    for section, values in raw.items():
        check_key(section, None, where)
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: section '{section}' must be a mapping of keys to values")
        for key in values:
            check_key(section, key, where)
    for text in overrides:
        section, key, value = parse_override(text)
        raw.setdefault(section, {})[key] = value
    return build_config(raw, where)


def config_from_dict(raw: dict[str, Any], where: str) -> Config:
    """Rebuild a config saved in a run directory, checking it as strictly as a user's file."""
    for section, values in raw.items():
        check_key(section, None, where)
        for key in values:
            check_key(section, key, where)
    return build_config(raw, where)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config: {error}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}{line}: invalid YAML: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections (data, tokenizer, model, train)")
    return raw


def parse_override(text: str) -> tuple[str, str, Any]:
    """`train.lr=1e-3` -> ('train', 'lr', '1e-3'), checked against the known sections and keys."""
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    where = f"override '{text}'"
    if not sep or not dot or not key:
        raise ConfigError(f"{where}: expected section.key=value, for example train.lr=0.5")
    check_key(section, key, where)
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return section, key, parsed


def check_key(section: str, key: str | None, where: str) -> None:
    if section not in SECTIONS:
        raise ConfigError(f"{where}: unknown section '{section}'{suggest(section, SECTIONS)}; "
                          f"valid sections: {', '.join(SECTIONS)}")
    if key is None:
        return
    names = [f.name for f in dataclasses.fields(SECTIONS[section])]
    if key not in names:
        raise ConfigError(f"{where}: unknown key '{section}.{key}'{suggest(key, names)}; "
                          f"valid keys of {section}: {', '.join(names)}")


def suggest(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def build_config(raw: dict[str, Any], where: str) -> Config:
    sections = {}
    for name, cls in SECTIONS.items():
        values = raw.get(name) or {}
        hints = typing.get_type_hints(cls)
        kwargs = {f.name: coerce(values[f.name], hints[f.name], f, f"{name}.{f.name}", where)
                  for f in dataclasses.fields(cls) if f.name in values}
        sections[name] = cls(**kwargs)
    return Config(**sections)


def coerce(value: Any, annotation: Any, spec: dataclasses.Field, key: str, where: str) -> Any:
    """Turn a YAML or command-line value into the field's type, then check its bounds."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union and type(None) in args:
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "")):
            return None
        annotation = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key} = {value!r} is not {expected}")

    if origin is list:
        items = value if isinstance(value, list) else None
        numbers = [to_number(item, args[0]) for item in items] if items is not None else [None]
        if None in numbers:
            raise bad(f"a list of {args[0].__name__}s, e.g. [2000, 10000]")
        for number in numbers:
            check_range(number, spec, key, where)
        return numbers
    if origin is Literal:
        if value not in args:
            raise bad("one of " + ", ".join(map(str, args)))
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise bad("true or false")
    if annotation is int:
        result = to_number(value, int)
        if result is None:
            raise bad("an integer")
    elif annotation is float:
        result = to_number(value, float)
        if result is None:
            raise bad("a number")
    else:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    check_range(result, spec, key, where)
    return result


def to_number(value: Any, kind: type) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):  # YAML reads `1e-3` as a string: parse it here
        try:
            value = float(value) if kind is float or any(c in value for c in ".eE") else int(value)
        except ValueError:
            return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if kind is int:
        if isinstance(value, float):
            return int(value) if value.is_integer() else None
        return value if isinstance(value, int) else None
    return float(value) if isinstance(value, (int, float)) else None


def check_range(value: float, spec: dataclasses.Field, key: str, where: str) -> None:
    low, high = spec.metadata.get("low"), spec.metadata.get("high")
    too_low = low is not None and (value <= low if spec.metadata["low_open"] else value < low)
    too_high = high is not None and (value >= high if spec.metadata["high_open"] else value > high)
    if too_low or too_high:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if spec.metadata['low_open'] else '>='} {low:g}")
        if high is not None:
            bounds.append(f"{'<' if spec.metadata['high_open'] else '<='} {high:g}")
        raise ConfigError(f"{where}: {key} = {value!r} is out of range: must be {' and '.join(bounds)}")


def config_to_yaml(config: Config) -> str:
    """The resolved config as YAML text, every key written out."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
