"""Which precision runs where: the capability checks, `auto`, and the refusal and fallback paths, forced so that
they are tested on every machine, with or without bf16 units or a GPU."""

import json

import pytest
import torch
from typer.testing import CliRunner

from lstm_lm.cli import app
from lstm_lm.errors import UserError
from lstm_lm.hardware import machine, precision
from lstm_lm.hardware.precision import fastest_precision, resolve_precision, run_precision
from tests.conftest import REPO

runner = CliRunner()
CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)
NO_UNITS = "this CPU has no bf16 units (AMX or AVX512-BF16)"


@pytest.fixture
def cpu_without_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_problem", lambda: NO_UNITS)


@pytest.fixture
def cpu_with_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_problem", lambda: None)


def fake_gpu(monkeypatch, capability: tuple[int, int]) -> None:
    """torch.cuda answering as a GPU of this compute capability would (bf16 natively from 8.0 on)."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation or capability >= (8, 0))


def test_flags_without_bf16_units_are_read_as_such(monkeypatch):
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx2", "fma", "avx512f"})
    monkeypatch.setattr(machine.platform, "machine", lambda: "x86_64")
    assert precision.cpu_bf16_problem.__wrapped__() == NO_UNITS


def test_flags_are_settled_by_trying_the_kernel(monkeypatch):
    # The flag is there, but the kernel refuses (as oneDNN does under ONEDNN_MAX_CPU_ISA=AVX2 on an AMX CPU).
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    monkeypatch.setattr(machine.platform, "machine", lambda: "x86_64")

    def refusing_lstm(*args, **kwargs):
        raise RuntimeError("could not create a primitive descriptor for the LSTM forward propagation primitive")

    monkeypatch.setattr(torch.nn, "LSTM", refusing_lstm)
    problem = precision.cpu_bf16_problem.__wrapped__()
    assert problem == ("this CPU lists bf16 units, but its kernels refuse bf16 (could not create a primitive "
                       "descriptor for the LSTM forward propagation primitive)")


def test_arm_bf16_extension_counts_as_units(monkeypatch):
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"fp", "asimd", "bf16"})
    monkeypatch.setattr(machine.platform, "machine", lambda: "aarch64")
    assert machine.bf16_unit_flags() == ["bf16"]


def test_cpu_flags_and_name_are_read_from_x86_and_arm_cpuinfo(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(machine, "CPUINFO", cpuinfo)
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 fma\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 fma\n")
    assert machine.cpu_flags() == {"fpu", "avx2", "fma"}
    assert machine.cpu_description()["model"] == "AMD EPYC 7B13"
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\nCPU implementer\t: 0x41\n")
    assert machine.cpu_flags() == {"fp", "asimd", "bf16"}
    monkeypatch.setattr(machine, "CPUINFO", tmp_path / "absent")  # macOS, Windows
    assert machine.cpu_flags() == set()


def test_bf16_on_a_cpu_without_units_is_refused_in_one_line(cpu_without_bf16):
    with pytest.raises(UserError) as error:
        resolve_precision("bf16", CPU)
    assert str(error.value) == f"train.precision=bf16: {NO_UNITS}; use fp32 or auto"
    assert resolve_precision("auto", CPU) is None


def test_auto_takes_bf16_where_the_cpu_runs_it(cpu_with_bf16):
    assert resolve_precision("auto", CPU) is torch.bfloat16
    assert resolve_precision("bf16", CPU) is torch.bfloat16
    assert resolve_precision("fp32", CPU) is None


@pytest.mark.parametrize("capability, auto", [((9, 0), torch.bfloat16), ((8, 0), torch.bfloat16),
                                              ((7, 5), torch.float16), ((7, 0), torch.float16), ((6, 1), None)])
def test_auto_on_gpus_counts_no_emulated_bf16(monkeypatch, capability, auto):
    fake_gpu(monkeypatch, capability)
    assert fastest_precision(GPU) is auto


def test_bf16_on_a_gpu_without_units_is_refused(monkeypatch):
    fake_gpu(monkeypatch, (7, 0))
    with pytest.raises(UserError, match=r"^train.precision=bf16: Tesla V100 \(compute capability 7.0\) has no bf16 "
                                        r"units; bf16 needs 8.0 \(Ampere\) or newer; use fp16, fp32 or auto$"):
        resolve_precision("bf16", GPU)
    assert resolve_precision("fp16", GPU) is torch.float16


def test_a_runs_precision_falls_back_to_fp32_with_a_warning(cpu_without_bf16):
    warnings: list[str] = []
    assert run_precision("bf16", CPU, warnings.append) is None
    assert run_precision("fp16", CPU, warnings.append) is None
    assert warnings == [
        f"warning: the run was trained in bf16, which this machine cannot run ({NO_UNITS}); scoring in fp32",
        "warning: the run was trained in fp16, which this machine cannot run (fp16 needs a CUDA device); scoring "
        "in fp32"]
    assert run_precision("fp32", CPU, warnings.append) is None and len(warnings) == 2


@pytest.fixture
def bf16_run(tmp_path, synthetic_corpus):
    """A tiny fp32 run whose config says it was trained in bf16, as a run from an AMX machine does."""
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(REPO / "configs/tiny.yaml"), "--out", str(run_dir),
                                 "--device", "cpu", f"data.path={synthetic_corpus}",
                                 f"data.cache_dir={tmp_path / 'cache'}", "train.max_steps=10", "train.batch_size=4"])
    assert result.exit_code == 0, result.output
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("precision: fp32", "precision: bf16"))
    return run_dir


def test_evaluating_a_bf16_run_without_bf16_units_warns_and_scores_in_fp32(bf16_run, cpu_without_bf16):
    fallback = runner.invoke(app, ["evaluate", str(bf16_run), "--json", "--device", "cpu"])
    assert fallback.exit_code == 0, fallback.output
    assert fallback.stderr.strip() == (f"warning: the run was trained in bf16, which this machine cannot run "
                                       f"({NO_UNITS}); scoring in fp32")
    exact = runner.invoke(app, ["evaluate", str(bf16_run), "--json", "--device", "cpu", "--precision", "fp32"])
    assert json.loads(fallback.stdout.splitlines()[-1]) == json.loads(exact.stdout.splitlines()[-1])
    assert exact.stderr == ""


@pytest.mark.parametrize("command", [["evaluate"], ["eval-agreement"]])
def test_asking_for_bf16_without_units_is_refused(bf16_run, cpu_without_bf16, command):
    result = runner.invoke(app, [*command, str(bf16_run), "--device", "cpu", "--precision", "bf16"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: --precision=bf16: {NO_UNITS}; use fp32 or auto"


def test_training_in_bf16_without_units_is_refused_before_any_work(tmp_path, synthetic_corpus, cpu_without_bf16):
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(REPO / "configs/tiny.yaml"), "--out", str(run_dir),
                                 "--device", "cpu", f"data.path={synthetic_corpus}",
                                 f"data.cache_dir={tmp_path / 'cache'}", "train.precision=bf16"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: train.precision=bf16: {NO_UNITS}; use fp32 or auto"
    assert not run_dir.exists()


def test_the_probe_leaves_the_seeded_random_stream_alone(monkeypatch):
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"amx_bf16"})
    monkeypatch.setattr(machine.platform, "machine", lambda: "x86_64")
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    precision.cpu_bf16_problem.__wrapped__()  # builds a small LSTM with random weights, whatever it finds
    assert torch.equal(torch.rand(4), expected)
