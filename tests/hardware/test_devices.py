"""What moves between devices and precisions: a checkpoint's state saved in half precision, the per-step
synchronisation, and (on a GPU, skipped elsewhere) CUDA training in each precision and its resume on the CPU."""

import math

import pytest
import torch
import torch.nn.functional as F

from lstm_lm.config import load_config
from lstm_lm.hardware.precision import parse_precision, precision_problem
from lstm_lm.kernels.losses import decoder_nll
from lstm_lm.model.fast_lstm import FastLSTM
from lstm_lm.rundir.checkpoint import load_tensors, save_tensors
from lstm_lm.train import trainer as train_module
from tests.conftest import tiny_config, train_quietly

cuda = pytest.mark.cuda
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_half_precision_state_in_a_checkpoint_resumes_in_fp32(tmp_path, synthetic_corpus, dtype):
    # What a GPU run under autocast can leave in checkpoint.pt, resumed on the CPU in fp32: nn.LSTM (oneDNN) fails
    # its first step with a state of another dtype than its weights.
    run_dir = tmp_path / "run"
    train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", "train.max_steps=6", "model.num_layers=2"),
                  run_dir)
    saved = load_tensors(run_dir / "checkpoint.pt")
    for rank in saved["rank_states"]:
        rank["hidden"] = [state.to(dtype) for state in rank["hidden"]]
    save_tensors(run_dir / "checkpoint.pt", saved)
    resumed = train_quietly(load_config(run_dir / "config.yaml", ["train.max_steps=12"]), run_dir, resume=True)
    assert resumed["steps"] == 12 and math.isfinite(resumed["results"]["test"]["loss"])


def test_one_synchronisation_per_step(tmp_path, synthetic_corpus, monkeypatch):
    # The bad-step check and the stop conditions share one all-reduce (one host sync) per step; a second one per
    # step doubled the collectives under torchrun.
    calls = []
    original = train_module.max_over_ranks
    monkeypatch.setattr(train_module, "max_over_ranks", lambda *args: calls.append(1) or original(*args))
    info = train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", "train.epochs=2"), tmp_path / "run")
    # one per step, plus one before the first step and one at the end of each epoch
    assert len(calls) == info["steps"] + 1 + info["epochs_completed"]


@cuda
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "auto"])
def test_cuda_training_keeps_an_fp32_state_and_resumes_on_the_cpu(tmp_path, synthetic_corpus, precision):
    if precision != "auto" and precision_problem(parse_precision(precision, "precision"), torch.device("cuda")):
        pytest.skip(f"this GPU does not run {precision}")
    run_dir = tmp_path / "run"
    config = tiny_config(synthetic_corpus, tmp_path / "cache", "train.device=cuda", f"train.precision={precision}",
                         "train.max_steps=20", "model.num_layers=2", "model.dropout=0.2")
    info = train_quietly(config, run_dir)
    assert info["device"].startswith("cuda") and math.isfinite(info["results"]["test"]["loss"])
    saved = load_tensors(run_dir / "checkpoint.pt")
    assert all(state.dtype == torch.float32 for state in saved["rank_states"][0]["hidden"])
    assert saved["rank_states"][0]["cuda_rng"] is not None
    on_cpu = load_config(run_dir / "config.yaml", ["train.device=cpu", "train.precision=fp32", "train.max_steps=30"])
    resumed = train_quietly(on_cpu, run_dir, resume=True)
    assert resumed["steps"] == 30 and resumed["device"] == "cpu"


@cuda
@needs_cuda
def test_cudnn_under_bf16_autocast_runs_in_fp32_not_fp16():
    device = torch.device("cuda")
    if precision_problem(torch.bfloat16, device):
        pytest.skip("this GPU has no bf16")
    lstm = FastLSTM(16, 16, 2).to(device)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        output, (h, c) = lstm(torch.randn(5, 3, 16, device=device))
    assert output.dtype == h.dtype == c.dtype == torch.float32  # plain autocast gives float16 here


@cuda
@needs_cuda
@pytest.mark.parametrize("dtype, tolerance", [(None, 1e-4), (torch.bfloat16, 0.15), (torch.float16, 0.05)])
def test_decoder_nll_on_cuda_matches_cross_entropy(dtype, tolerance):
    device = torch.device("cuda")
    torch.manual_seed(0)
    features = torch.randn(70, 33, device=device, requires_grad=True)
    weight = (torch.randn(101, 33, device=device) * 0.1).requires_grad_(True)
    bias = torch.randn(101, device=device, requires_grad=True)
    targets = torch.randint(0, 101, (70,), device=device)
    results = []
    for function in (lambda: F.cross_entropy(F.linear(features, weight, bias).float(), targets, reduction="none"),
                     lambda: decoder_nll(features, weight, bias, targets)):
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = function()
        gradients = torch.autograd.grad(loss.sum(), (features, weight, bias))
        results.append((loss, *gradients))
    for expected, actual in zip(*results):
        assert torch.allclose(actual.float(), expected.float(), atol=tolerance), (actual - expected).abs().max()
