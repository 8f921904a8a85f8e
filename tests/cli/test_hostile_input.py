"""Broken corpora and run directories end in one line naming the file, the key or the numbers."""

import builtins
import errno

import pytest
from typer.testing import CliRunner

from lstm_lm.cli import app
from lstm_lm.config import config_to_yaml, load_config
from lstm_lm.data.corpus import load_corpus
from lstm_lm.errors import UserError
from lstm_lm.rundir.checkpoint import load_tensors, save_tensors
from lstm_lm.train.progress import Reporter
from tests.conftest import quiet_console, tiny_config, train_quietly, write_synthetic_corpus

runner = CliRunner()


def corpus_config(path, *overrides):
    return load_config(None, [f"data.path={path}", "data.cache=false", *overrides])


def write_splits(directory, train: bytes, valid: bytes = b"a b\n", test: bytes = b"a b\n"):
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in (("train.txt", train), ("valid.txt", valid), ("test.txt", test)):
        (directory / name).write_bytes(data)
    return directory


def test_binary_file_as_a_corpus_is_refused_naming_the_offset(tmp_path):
    blob = tmp_path / "weights.bin"
    blob.write_bytes(b"PK\x03\x04\x00\x00binary")  # a zip header, as if an archive were given
    with pytest.raises(UserError, match=r"weights.bin: a binary file, not text \(NUL byte at offset 4\)"):
        load_corpus(corpus_config(blob).data, corpus_config(blob).tokenizer)


def test_utf16_text_is_not_mistaken_for_binary(tmp_path):
    corpus = write_splits(tmp_path / "c", "a b c\n".encode("utf-16"), "a b\n".encode("utf-16"),
                          "b c\n".encode("utf-16"))
    config = corpus_config(corpus, "data.encoding=utf-16")
    loaded = load_corpus(config.data, config.tokenizer)
    assert loaded.tokenizer.decode(loaded.train.tolist()) == "a b c\n"


def test_invalid_utf8_is_an_error_or_replaced_with_a_warning(tmp_path):
    corpus = write_splits(tmp_path / "c", b"a \xff b\n" * 3)
    strict = corpus_config(corpus)
    with pytest.raises(UserError, match=r"train.txt: not valid utf-8 at byte offset 2 \(data.errors=replace"):
        load_corpus(strict.data, strict.tokenizer)
    replace = corpus_config(corpus, "data.errors=replace")
    messages = []
    loaded = load_corpus(replace.data, replace.tokenizer, log=messages.append)
    assert messages == [f"warning: {corpus / 'train.txt'}: not valid utf-8 from byte offset 2; invalid bytes read "
                        f"as U+FFFD (data.errors=replace)"]
    assert "\ufffd" in loaded.tokenizer.itos and loaded.train.numel() == 12  # 3 × (a, U+FFFD, b, <eos>)


def test_vocabulary_cap_above_the_vocabulary_is_a_warning(tmp_path, synthetic_corpus):
    messages = []
    config = corpus_config(synthetic_corpus, "tokenizer.max_size=1000")
    loaded = load_corpus(config.data, config.tokenizer, log=messages.append)
    assert messages == ["warning: tokenizer.max_size=1000 is larger than the vocabulary the training split yields "
                        "(62, specials included); every type is kept"]
    assert loaded.tokenizer.vocab_size == 62
    capped = corpus_config(synthetic_corpus, "tokenizer.max_size=10")
    messages.clear()
    assert load_corpus(capped.data, capped.tokenizer, log=messages.append).tokenizer.vocab_size == 10
    assert messages == []


@pytest.mark.parametrize("kind", ["word", "char", "bpe"])
def test_a_very_long_line_is_read_in_linear_time_and_memory(tmp_path, kind):
    line = " ".join(f"w{i % 500}" for i in range(100_000))  # one 590 kB line: quadratic work would not finish
    corpus = write_splits(tmp_path / "c", (line + "\n").encode())
    config = corpus_config(corpus, f"tokenizer.kind={kind}", "tokenizer.bpe_vocab_size=600")
    loaded = load_corpus(config.data, config.tokenizer)
    assert loaded.tokenizer.decode(loaded.train.tolist()) == line + "\n"


def test_splits_shorter_than_one_window_name_the_split_and_the_numbers(tmp_path):
    short_train = write_synthetic_corpus(tmp_path / "a", lines_per_split=(10, 60, 60))  # 70 tokens
    with pytest.raises(UserError, match=r"a: the train split has 70 tokens, fewer than one window: \(train.bptt \+ 1\) "
                                        r"× train.batch_size = \(10 \+ 1\) × 8 = 88"):
        train_quietly(tiny_config(short_train, tmp_path / "cache"), tmp_path / "run-a")
    short_valid = write_synthetic_corpus(tmp_path / "b", lines_per_split=(600, 5, 60))  # 35 tokens
    with pytest.raises(UserError, match=r"b: the valid split has 35 tokens, fewer than one window: train.bptt × "
                                        r"train.eval_batch_size = 10 × 4 = 40"):
        train_quietly(tiny_config(short_valid, tmp_path / "cache"), tmp_path / "run-b")


def test_checkpoint_of_another_format_version_is_refused_naming_the_file(tmp_path, synthetic_corpus):
    run_dir = tmp_path / "run"
    train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", "train.max_steps=3"), run_dir)
    saved = load_tensors(run_dir / "checkpoint.pt")
    assert saved["format_version"] == 1
    save_tensors(run_dir / "checkpoint.pt", {**saved, "format_version": 99})
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {run_dir / 'checkpoint.pt'}: checkpoint format 99, but this lstm-lm "
                                     f"reads format 1")
    # Written before the key existed: format 1's layout, resumed as such.
    save_tensors(run_dir / "checkpoint.pt", {key: value for key, value in saved.items() if key != "format_version"})
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "train.max_steps=4"])
    assert result.exit_code == 0, result.output
    assert load_tensors(run_dir / "checkpoint.pt")["trainer"]["step"] == 4


def test_weights_file_given_as_a_checkpoint_is_refused(tmp_path, synthetic_corpus):
    run_dir = tmp_path / "run"
    train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", "train.max_steps=3"), run_dir)
    (run_dir / "model.pt").replace(run_dir / "checkpoint.pt")
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 2 and "checkpoint.pt: not a training checkpoint" in result.stderr


@pytest.mark.parametrize("case", ["binary", "short split", "full disk"])
def test_cli_reports_each_case_in_one_line_and_exit_status_2(tmp_path, synthetic_corpus, monkeypatch, case):
    overrides = []
    if case == "binary":
        (synthetic_corpus / "test.txt").write_bytes(b"\x00\x01\x02")
        expected = "test.txt: a binary file, not text (NUL byte at offset 0)"
    elif case == "short split":
        overrides = ["train.batch_size=1000"]
        expected = "the train split has 4,200 tokens, fewer than one window"
    else:
        def full_disk(source, destination):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("lstm_lm.atomic.os.replace", full_disk)
        expected = "config.yaml: cannot write: No space left on device"
    config = tmp_path / "config.yaml"
    config.write_text(config_to_yaml(tiny_config(synthetic_corpus, tmp_path / "cache", *overrides)))
    result = runner.invoke(app, ["train", "--config", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not list((tmp_path / "run").glob("*.pt")) and not list((tmp_path / "run").glob(".*.tmp"))



def test_a_full_disk_while_logging_is_one_line(tmp_path, monkeypatch):
    reporter = Reporter(tmp_path / "metrics.jsonl", quiet_console())
    real_open = builtins.open

    def full_disk(path, *args, **kwargs):
        if str(path).endswith("metrics.jsonl"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk)
    with pytest.raises(UserError, match="metrics.jsonl: cannot write: No space left on device"):
        reporter.record("valid", step=1)
