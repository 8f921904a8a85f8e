"""Scoring speed of an exported model in onnxruntime against lstm-lm's own forward, on this CPU, in one run.

The run is exported with `lstm_lm.export.export_run` (to a temporary directory), then each runtime scores the same
token ids at the same batch, carrying the state:
  1. batch 1, one token at a time (the sampling use case: each step waits for the one before);
  2. batch 10 in windows of 35 tokens (scoring a text, as `lstm-lm evaluate` lays it out).
All but `lstm-lm nll` compute the full log-distribution over the vocabulary, as the exported step function does:
  onnxruntime   the ONNX file;
  torchscript   the TorchScript file, in torch.jit.load;
  lstm-lm       LanguageModel.forward without targets (what sampling calls);
  lstm-lm nll   LanguageModel.forward with targets, each target's log-probability only, as `evaluate` scores
                (with the adaptive softmax it skips the tails that no target falls in);
  no oneDNN     lstm-lm as sampling calls it, with torch's oneDNN backend off, so that nn.LSTM runs ATen's own
                CPU kernel (on the CPU torch's LSTM inference otherwise goes to oneDNN's).
The token ids are random (speed does not depend on which), the same for everyone. The runtimes are timed in turn,
round after round, and each keeps its best round, so that a burst of load from another process lands on every one
alike. The ratios printed are tokens/s over lstm-lm's, from this one run.

Run: python scripts/bench_export.py RUN_DIR [--threads 1] [--rounds 5] [--steps 300] [--windows 20]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lstm_lm.export.command import export_run
from lstm_lm.model.language_model import layer_sizes
from lstm_lm.rundir.run_files import load_run


def best_seconds(calls: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    best = {name: float("inf") for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def scorers(run_dir: Path, directory: Path, threads: int) -> tuple[dict[str, Callable], torch.nn.Module, int]:
    """Each runtime as score(windows (N, T, B) int64) -> None, scoring the windows in turn from a zero state."""
    import onnxruntime

    onnx_file, script_file = directory / "model.onnx", directory / "model.pt"
    export_run(run_dir, "onnx", onnx_file)
    export_run(run_dir, "torchscript", script_file)
    model = load_run(run_dir, torch.device("cpu")).model
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    state_names = [tensor.name for tensor in session.get_inputs()[1:]]
    script = torch.jit.load(str(script_file))

    def zeros(batch: int) -> list[np.ndarray]:
        return [np.zeros([batch if not isinstance(size, int) else size for size in tensor.shape], np.float32)
                for tensor in session.get_inputs()[1:]]

    def onnx_score(windows: np.ndarray) -> None:
        state = zeros(windows.shape[2])
        for window in windows:
            _, *state = session.run(None, {"tokens": window, **dict(zip(state_names, state))})

    @torch.inference_mode()
    def script_score(windows: np.ndarray) -> None:
        state = [torch.from_numpy(part) for part in zeros(windows.shape[2])]
        for window in torch.from_numpy(windows):
            _, *state = script(window, *state)

    @torch.inference_mode()
    def lstm_lm_score(windows: np.ndarray) -> None:
        hidden = model.init_hidden(windows.shape[2])
        for window in torch.from_numpy(windows):
            _, hidden = model(window, hidden)

    @torch.inference_mode()
    def lstm_lm_nll(windows: np.ndarray) -> None:
        hidden = model.init_hidden(windows.shape[2])
        windows = torch.from_numpy(windows)
        for window, targets in zip(windows, windows.roll(-1, dims=1)):
            _, hidden = model(window, hidden, targets)

    def without_onednn(windows: np.ndarray) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # flags() notes that TF32 on oneDNN needs an Intel GPU
            with torch.backends.mkldnn.flags(enabled=False):
                lstm_lm_score(windows)

    runtimes = {"onnxruntime": onnx_score, "torchscript": script_score, "lstm-lm": lstm_lm_score,
                "lstm-lm nll": lstm_lm_nll, "no oneDNN": without_onednn}
    return runtimes, model, int(model.vocab_size)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--threads", type=int, default=1, help="torch's and onnxruntime's threads")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300, help="batch-1 steps, one token at a time")
    parser.add_argument("--windows", type=int, default=20, help="10 × 35 windows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as directory:
        runtimes, model, vocab_size = scorers(args.run_dir, Path(directory), args.threads)
        rng = np.random.default_rng(0)
        cases = {"batch 1, one token at a time": rng.integers(0, vocab_size, (args.steps, 1, 1), dtype=np.int64),
                 "batch 10, windows of 35": rng.integers(0, vocab_size, (args.windows, 35, 10), dtype=np.int64)}
        sizes = "×".join(map(str, layer_sizes(model.config)))
        print(f"{args.run_dir}: {model.config.cell} {sizes}, {model.config.softmax} softmax, vocabulary "
              f"{vocab_size:,}; {cpu_name()}, {args.threads} thread(s), best of {args.rounds} rounds")
        for case, windows in cases.items():
            for runtime in runtimes.values():  # warm up: first calls allocate and pick kernels
                runtime(windows[:2])
            calls = {name: (lambda run=run, windows=windows: run(windows)) for name, run in runtimes.items()}
            seconds = best_seconds(calls, args.rounds)
            tokens = windows.size
            base = tokens / seconds["lstm-lm"]
            print(f"\n{case} ({tokens:,} tokens)")
            for name, taken in seconds.items():
                print(f"  {name:12s} {tokens / taken:10,.0f} tokens/s   {tokens / taken / base:5.2f}× lstm-lm")


if __name__ == "__main__":
    main()
