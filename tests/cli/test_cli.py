import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from lstm_lm.cli import app
from tests.conftest import REPO, needs_cpu_bf16

runner = CliRunner()


@pytest.fixture
def trained_run(tmp_path, synthetic_corpus):
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(REPO / "configs/tiny.yaml"), "--out", str(run_dir),
                                 f"data.path={synthetic_corpus}", f"data.cache_dir={tmp_path / 'cache'}",
                                 "train.max_steps=null", "train.epochs=8", "train.optimizer=adamw",
                                 "train.lr=0.01", "train.batch_size=8", "train.loss_reduction=mean"])
    assert result.exit_code == 0, result.output
    assert "parameters" in result.output and "test ppl" in result.output
    return run_dir


def test_train_evaluate_sample_round_trip(trained_run):
    result = runner.invoke(app, ["evaluate", str(trained_run), "--split", "test", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["split"] == "test" and report["tokens"] == 60 * 7
    assert 1.0 < report["ppl"] < 3.0  # learned: chance would be ~60
    run_info = json.loads((trained_run / "run.json").read_text())
    assert report["ppl"] == pytest.approx(run_info["results"]["test"]["ppl"], rel=1e-9)

    first = runner.invoke(app, ["sample", str(trained_run), "--prompt", "k3", "--tokens", "12", "--seed", "7",
                                 "--temperature", "0.3"])
    again = runner.invoke(app, ["sample", str(trained_run), "--prompt", "k3", "--tokens", "12", "--seed", "7",
                                 "--temperature", "0.3"])
    assert first.exit_code == 0 and first.stdout == again.stdout
    assert first.stdout.startswith("k3 w3_0 w3_1 w3_2")  # the pattern the key fixes, learned
    greedy = runner.invoke(app, ["sample", str(trained_run), "--prompt", "k5", "--tokens", "6",
                                 "--temperature", "0"])
    assert greedy.stdout == "k5 w5_0 w5_1 w5_2 w5_3 w5_4\n"


def test_evaluate_a_text_file_and_oov_prompt_warning(trained_run, tmp_path):
    text = tmp_path / "other.txt"
    text.write_text("k1 w1_0 w1_1 w1_2 w1_3 w1_4\n", encoding="utf-8")
    result = runner.invoke(app, ["evaluate", str(trained_run), "--file", str(text)])
    assert result.exit_code == 0 and "7 tokens" in result.stdout
    sampled = runner.invoke(app, ["sample", str(trained_run), "--prompt", "k1 zebra", "--tokens", "3",
                                  "--seed", "1"])
    assert sampled.exit_code == 0
    assert "not in the vocabulary, read as <unk>: zebra" in sampled.stderr


def test_user_errors_are_one_line_and_exit_nonzero(tmp_path):
    cases = [
        (["train", "--config", str(REPO / "configs/tiny.yaml"), "model.hiden_size=3"], "did you mean 'hidden_size'"),
        (["train", "--config", str(tmp_path / "none.yaml")], "config file not found"),
        (["train", "--config", str(REPO / "configs/tiny.yaml"), "--device", "cuda", "--out", str(tmp_path / "r")],
         "CUDA is not available"),
        (["evaluate", str(tmp_path / "missing")], "run directory not found"),
        (["sample", str(tmp_path)], "run.json: not found"),
    ]
    for arguments, message in cases:
        if "cuda" in arguments and torch.cuda.is_available():
            continue
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2, (arguments, result.output)
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_corrupted_weights_are_refused_with_the_file_name(trained_run):
    (trained_run / "model.pt").write_bytes(b"not a checkpoint")
    result = runner.invoke(app, ["evaluate", str(trained_run)])
    assert result.exit_code == 2 and "model.pt: cannot read checkpoint" in result.stderr


def test_pickle_that_runs_code_is_refused(trained_run):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Exploit()}, trained_run / "model.pt")
    result = runner.invoke(app, ["evaluate", str(trained_run)])
    assert result.exit_code == 2 and "refused to load: it would run code (print)" in result.stderr
    assert "pwned" not in result.output


@pytest.mark.parametrize("kind, extra", [("char", ["tokenizer.char_unit=byte"]), ("bpe", ["tokenizer.bpe_vocab_size=80"])])
def test_char_and_bpe_runs_round_trip(tmp_path, synthetic_corpus, kind, extra):
    run_dir = tmp_path / kind
    result = runner.invoke(app, ["train", "--config", str(REPO / "configs/tiny.yaml"), "--out", str(run_dir),
                                 f"data.path={synthetic_corpus}", f"data.cache_dir={tmp_path / 'cache'}",
                                 f"tokenizer.kind={kind}", *extra, "train.max_steps=5", "train.batch_size=4"])
    assert result.exit_code == 0, result.output
    report = json.loads(runner.invoke(app, ["evaluate", str(run_dir), "--json"]).stdout.strip().splitlines()[-1])
    assert ("bpc" in report) == (kind == "char")
    assert report["tokens"] > 0 and report["ppl"] > 1
    sampled = runner.invoke(app, ["sample", str(run_dir), "--prompt", "k1", "--tokens", "10", "--seed", "3"])
    assert sampled.exit_code == 0 and sampled.stdout.startswith("k1")


@needs_cpu_bf16
def test_evaluate_precision_option(trained_run):
    exact = json.loads(runner.invoke(app, ["evaluate", str(trained_run), "--json"]).stdout.splitlines()[-1])
    fast = json.loads(runner.invoke(app, ["evaluate", str(trained_run), "--json", "--precision", "bf16"]
                                    ).stdout.splitlines()[-1])
    assert fast["tokens"] == exact["tokens"]
    assert fast["loss"] == pytest.approx(exact["loss"], rel=0.05) and fast["loss"] != exact["loss"]
    bad = runner.invoke(app, ["evaluate", str(trained_run), "--precision", "fp8"])
    assert bad.exit_code == 2 and "precision 'fp8': expected fp32, bf16, fp16 or auto" in bad.stderr


def test_byte_model_samples_stream_whole_characters(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split in ("train", "valid", "test"):
        (corpus / f"{split}.txt").write_text("héé éh hé\n" * 200, encoding="utf-8")
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(REPO / "configs/tiny.yaml"), "--out", str(run_dir),
                                 f"data.path={corpus}", f"data.cache_dir={tmp_path / 'cache'}", "tokenizer.kind=char",
                                 "tokenizer.char_unit=byte", "train.max_steps=60", "train.batch_size=4",
                                 "train.optimizer=adamw", "train.lr=0.01", "train.loss_reduction=mean"])
    assert result.exit_code == 0, result.output
    sampled = runner.invoke(app, ["sample", str(run_dir), "--prompt", "h", "--tokens", "40", "--seed", "1",
                                  "--temperature", "0.5"])
    assert sampled.exit_code == 0 and "é" in sampled.stdout
    assert "\ufffd" not in sampled.stdout[:-4]  # only a character cut off by the token limit may stay unfinished


# In a fresh process: the command's start must flush denormals in torch's worker threads too, which copy the flag
# only when created. A 2-thread product of 4M entries gives each thread half; 1e-30 * 1e-10 is a denormal float32.
DENORMALS_AFTER_COMMAND_START = """
import torch
from lstm_lm.cli import main
main(debug=False, threads=2)
x = torch.full((1 << 22,), 1e-30)
print(int(((x * 1e-10) != 0).sum()))
"""


def test_commands_flush_denormals_in_every_thread():
    result = subprocess.run([sys.executable, "-c", DENORMALS_AFTER_COMMAND_START], capture_output=True, text=True,
                            cwd=REPO, timeout=120, check=True)
    assert result.stdout.strip() == "0"


# Page faults of a 100 MB tensor allocated, filled and freed ten times after the commands' set-up. glibc maps such
# a block afresh each time (24k faults per fill) unless the commands keep freed blocks for reuse; the heap then
# grows over the first few rounds (aligned requests do not fit a freed block until neighbours merge) and stays.
FAULTS_AFTER_COMMAND_START = """
import resource, sys, torch
from lstm_lm.cli import main
if sys.argv[1] == "command":
    main(debug=False, threads=1)
for _ in range(20):
    torch.zeros(25_000_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.zeros(25_000_000)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_commands_reuse_large_freed_blocks():
    def faults(setting: str) -> int:
        result = subprocess.run([sys.executable, "-c", FAULTS_AFTER_COMMAND_START, setting], capture_output=True,
                                text=True, cwd=REPO, timeout=120, check=True)
        return int(result.stdout)

    assert faults("plain") > 10 * 20_000  # the premise: without the setting every fill faults its pages in
    assert faults("command") < 1_000
