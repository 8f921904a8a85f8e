"""The Python side of scripts/gpu_smoke.sh: what the shell cannot judge by an exit status. Each subcommand prints
one detail line for the script's PASS/FAIL line and exits 0 when the check passed, 1 when it failed.

    probe DEVICE                 what this machine offers, as shell assignments for the script to eval
    summary RUN --steps N ...    a finished training run: status, steps, device, finite perplexities
    compare RUN RUN [--exact]    the final weights of two runs (checkpoint.pt), bit for bit or within a tolerance
    evaluate OUT RUN             `lstm-lm evaluate --json` output against the run's own final test numbers
    agreement REPORT             an `eval-agreement --output` report parses and holds a plausible accuracy
    masks RUN DEVICE             under torchrun: after a resume, ranks draw different dropout masks
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
from pathlib import Path

# torch is imported where it is needed: the run.json checks need none, and its import takes seconds.

# A CUDA resume need not be bit-exact (cuDNN's kernels may sum in another order); beyond this share of the
# largest weight it has gone wrong (another dropout mask, a lost optimizer state), not merely rounded.
RELATIVE_TOLERANCE = 1e-3


def load(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def finish(ok: bool, detail: str) -> None:
    print(detail)
    sys.exit(0 if ok else 1)


def probe(device: str) -> None:
    """Shell assignments: TORCH, GPUS, GPU_NAME, and BF16 / FP16 (empty where the device runs them, else why not)."""
    import torch

    facts = {"TORCH": torch.__version__, "GPUS": "0", "GPU_NAME": "", "BF16": "", "FP16": ""}
    if device == "cuda":
        if not torch.cuda.is_available():
            finish(False, f"torch {torch.__version__} (CUDA build: {torch.version.cuda or 'none'}) sees no CUDA "
                          f"device; use --device cpu to test the script's logic on a CPU")
        torch.ones(1, device="cuda").add_(1).item()  # a driver that lists a GPU but cannot run on it fails here
        facts.update(GPUS=str(torch.cuda.device_count()), GPU_NAME=torch.cuda.get_device_name(0))
        if not torch.cuda.is_bf16_supported(including_emulation=False):
            major, minor = torch.cuda.get_device_capability(0)
            facts["BF16"] = f"compute capability {major}.{minor} has no bf16 units (needs 8.0)"
    else:
        facts["FP16"] = "fp16 training needs CUDA"
        facts["BF16"] = cpu_bf16_problem()
    print("\n".join(f"{key}={shlex.quote(value)}" for key, value in facts.items()))


def cpu_bf16_problem() -> str:
    """Empty where this CPU trains in bf16: it lists bf16 matrix units and a tiny LSTM step under bf16 autocast
    runs (without the units oneDNN refuses the bf16 LSTM, and the project refuses bf16 training)."""
    import torch

    flags = Path("/proc/cpuinfo").read_text(errors="ignore").split() if Path("/proc/cpuinfo").exists() else []
    if not {"amx_bf16", "avx512_bf16", "bf16"} & set(flags):
        return "this CPU has no bf16 units (AMX, AVX512-BF16 or Arm BF16)"
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output, _ = torch.nn.LSTM(8, 8)(torch.randn(2, 2, 8))
        output.float().sum().backward()
    except RuntimeError as error:
        return f"bf16 kernels refuse to run here ({str(error).splitlines()[0]})"
    return ""


def summary(run: Path, steps: int, device: str, processes: int) -> None:
    info = json.loads((run / "run.json").read_text())
    results = info.get("results", {})
    ppls = {split: results.get(split, {}).get("ppl", math.nan) for split in ("valid", "test")}
    problems = []
    if info.get("status") != "finished":
        problems.append(f"status {info.get('status')}")
    if info.get("steps") != steps:
        problems.append(f"{info.get('steps')} steps, expected {steps}")
    if not str(info.get("device", "")).startswith(device):
        problems.append(f"ran on {info.get('device')}, expected {device}")
    if info.get("processes") != processes:
        problems.append(f"{info.get('processes')} processes, expected {processes}")
    if processes > 1:  # each rank's RNG and hidden state, for --resume
        saved_ranks = len(load(run / "checkpoint.pt").get("rank_states", []))
        if saved_ranks != processes:
            problems.append(f"checkpoint.pt holds {saved_ranks} ranks' states, expected {processes}")
    problems += [f"{split} ppl {ppl}" for split, ppl in ppls.items() if not math.isfinite(ppl)]
    detail = (f"{info.get('steps')} steps on {info.get('device')} in {info.get('precision')}"
              + (f" ({processes} processes)" if processes > 1 else "")
              + f", valid ppl {ppls['valid']:.1f}, test ppl {ppls['test']:.1f}, bad steps {info.get('bad_steps')}")
    finish(not problems, detail + "".join(f"; {problem}" for problem in problems))


def weight_difference(first: Path, second: Path) -> tuple[float, float, int, int]:
    """Max absolute difference of the final weights, that over the largest weight, and both runs' steps."""
    a, b = load(first / "checkpoint.pt"), load(second / "checkpoint.pt")
    if a["model"].keys() != b["model"].keys():
        raise SystemExit(f"the runs hold different weights: {sorted(a['model'].keys() ^ b['model'].keys())}")
    largest = max(t.abs().max().item() for t in a["model"].values())
    diff = max((a["model"][name].float() - b["model"][name].float()).abs().max().item() for name in a["model"])
    return diff, diff / largest, a["trainer"]["step"], b["trainer"]["step"]


def compare(first: Path, second: Path, exact: bool) -> None:
    diff, relative, steps_a, steps_b = weight_difference(first, second)
    if steps_a != steps_b:
        finish(False, f"the runs ended at steps {steps_a} and {steps_b}")
    if diff == 0:
        finish(True, f"bit-exact after {steps_a} steps")
    verdict = "must be bit-exact here" if exact else f"tolerance {RELATIVE_TOLERANCE:g}"
    finish(not exact and relative < RELATIVE_TOLERANCE,
           f"not bit-exact after {steps_a} steps: max abs diff {diff:.3g} ({relative:.2g} of the largest weight; "
           f"{verdict})")


def evaluate(output: Path, run: Path) -> None:
    """The last stdout line of `evaluate --json` (the test split) against the test ppl training ended with."""
    lines = output.read_text().strip().splitlines()
    report = json.loads(lines[-1]) if lines else {}
    trained = json.loads((run / "run.json").read_text())["results"]["test"]["ppl"]
    ppl = report.get("ppl", math.nan)
    ok = math.isfinite(ppl) and report.get("tokens", 0) > 0 and abs(ppl / trained - 1) < 0.01
    finish(ok, f"test ppl {ppl:.2f} over {report.get('tokens')} tokens (training's final test ppl "
               f"{trained:.2f})")


def agreement(report_path: Path) -> None:
    suite = json.loads(report_path.read_text())["suites"][0]
    ok = suite["n"] > 0 and 0 <= suite["accuracy"] <= 1
    finish(ok, f"accuracy {100 * suite['accuracy']:.1f}% over {suite['n']:,} pairs "
               f"({suite.get('oov', 0):,} with words out of the tiny vocabulary left out)")


def masks(run: Path, device_name: str) -> None:
    """Under torchrun, on a copy of a stopped multi-process run: every rank resumes it as `train --resume` does
    (Trainer.resume restores the weights and this rank's RNG state), then runs one training-mode forward pass on
    the same tokens from the same zero hidden state. Weights, tokens and state being equal on every rank, the
    per-token losses can differ only through the dropout masks, which are the very next draws a resumed training
    step would make. Equal losses mean the ranks share their masks: the run then regularizes as if it had one
    rank's batch. Two controls keep the comparison honest: a second training-mode pass on the same rank must differ
    from the first (dropout is on), and the pass in evaluation mode must agree across ranks (nothing else differs).
    """
    import torch
    from rich.console import Console

    from lstm_lm.config import load_config
    from lstm_lm.data.corpus import load_corpus
    from lstm_lm.train.distributed import barrier, gather, join_world, leave_without_teardown, leave_world
    from lstm_lm.train.progress import Reporter
    from lstm_lm.train.trainer import Trainer

    config = load_config(run / "config.yaml", [])
    world, device = join_world(torch.device(device_name))
    try:
        corpus = load_corpus(config.data, config.tokenizer)
        trainer = Trainer(config, run, corpus, device, Reporter(Path(os.devnull), Console(file=open(os.devnull, "w"))),
                          world)
        trainer.resume()
        model, train = trainer.model, config.train
        # Tokens from arithmetic, not from the generator: nothing may draw from it before the masks do.
        tokens = (torch.arange((train.bptt + 1) * train.batch_size, device=device) * 7919 % model.vocab_size)
        tokens = tokens.view(train.bptt + 1, train.batch_size)
        losses = {}
        for mode in ("train", "train again", "eval"):
            model.train(mode != "eval")
            with torch.no_grad():
                losses[mode] = gather(model(tokens[:-1], model.init_hidden(train.batch_size), tokens[1:])[0], world)
        barrier(world)
    finally:
        leave_world(world)
    ok = True
    if world.main:
        first, second = losses["train"][:2]
        gap = (first - second).abs().max().item()
        dropout_on = not torch.equal(first, losses["train again"][0])
        eval_agrees = torch.allclose(*losses["eval"][:2], rtol=1e-5, atol=1e-6)
        ok = gap > 0 and dropout_on and eval_agrees
        print(f"ranks 0 and 1, the same tokens after the resume: training-mode losses differ by up to {gap:.3g} "
              f"({'different' if gap > 0 else 'the same'} masks)"
              + ("" if dropout_on else "; but a second pass on rank 0 gives the same losses: no dropout, no check")
              + ("" if eval_agrees else "; but evaluation-mode losses differ too: the check is void"))
    leave_without_teardown(0 if ok else 1)  # as `lstm-lm train` ends its ranks: Gloo may abort the teardown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("probe").add_argument("device", choices=["cpu", "cuda"])
    run_summary = commands.add_parser("summary")
    run_summary.add_argument("run", type=Path)
    run_summary.add_argument("--steps", type=int, required=True)
    run_summary.add_argument("--device", required=True)
    run_summary.add_argument("--processes", type=int, default=1)
    runs = commands.add_parser("compare")
    runs.add_argument("runs", type=Path, nargs=2)
    runs.add_argument("--exact", action="store_true")
    evaluation = commands.add_parser("evaluate")
    evaluation.add_argument("output", type=Path)
    evaluation.add_argument("run", type=Path)
    commands.add_parser("agreement").add_argument("report", type=Path)
    mask_check = commands.add_parser("masks")
    mask_check.add_argument("run", type=Path)
    mask_check.add_argument("device", choices=["cpu", "cuda"])
    args = parser.parse_args()
    if args.command == "probe":
        probe(args.device)
    elif args.command == "summary":
        summary(args.run, args.steps, args.device, args.processes)
    elif args.command == "compare":
        compare(*args.runs, exact=args.exact)
    elif args.command == "evaluate":
        evaluate(args.output, args.run)
    elif args.command == "agreement":
        agreement(args.report)
    else:
        masks(args.run, args.device)


if __name__ == "__main__":
    main()
