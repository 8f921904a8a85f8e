"""The `lstm-lm` command line: each command parses its options and calls one library function."""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

from .errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train multi-layer LSTM language models, measure them, sample from them, and test what "
                       "they learned about syntax.")
stderr = Console(stderr=True, highlight=False, soft_wrap=True)
settings = {"debug": False}

DEVICE_HELP = "auto (CUDA when present), cpu or cuda."


def user_errors_exit(command: Callable) -> Callable:
    """Turn a UserError into one line on stderr and exit status 2; Ctrl-C into status 130. --debug re-raises."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as error:
            if settings["debug"]:
                raise
            stderr.print("[bold red]error:[/]", markup=True, end=" ")
            stderr.print(str(error), markup=False)  # the message may echo user text with [brackets]
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            if settings["debug"]:
                raise
            stderr.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
         threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default: "
                                               "torch's choice; 1 is often faster on a busy machine).")) -> None:
    settings["debug"] = debug
    from .hardware.device import prepare_process  # imports torch: here, not at the top, to keep --help quick

    prepare_process()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors_exit
def train(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory [default: runs/<config name>]."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory."),
    force: bool = typer.Option(False, "--force", help="Replace a run already in the run directory."),
    device: Optional[str] = typer.Option(None, "--device", help=DEVICE_HELP),
) -> None:
    """Train a model. Trailing section.key=value arguments override the config, e.g. train.lr=0.5."""
    from .config import load_config
    from .train.distributed import leave_without_teardown
    from .train.run_training import train as run_training

    overrides = list(ctx.args)
    if device is not None:
        overrides.append(f"train.device={device}")
    if resume is not None:
        if config is not None or out is not None:
            raise UserError("--resume continues a run with its own config.yaml; it takes no --config or --out")
        settings_file, run_dir = resume / "config.yaml", resume
        if not settings_file.is_file():
            raise UserError(f"{settings_file}: not found; is {resume} a run directory?")
    else:
        if config is None:
            raise UserError("give a config with --config FILE.yaml (see configs/), or --resume RUN_DIR")
        settings_file, run_dir = config, out or Path("runs") / config.stem
    loaded = load_config(settings_file, overrides)
    info = run_training(loaded, run_dir, resume=resume is not None, force=force,
                        console=Console(highlight=False, soft_wrap=True))
    code = 130 if info["status"] == "interrupted" else 0
    if info["processes"] > 1:
        leave_without_teardown(code)
    if code:
        raise typer.Exit(code)


@app.command()
@user_errors_exit
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory made by `lstm-lm train`."),
    split: str = typer.Option("test", "--split", help="valid or test split of the training corpus (or train)."),
    file: Optional[Path] = typer.Option(None, "--file", help="Evaluate this text file instead of a split."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line of stdout."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Parallel streams."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp32, bf16, fp16 or auto [default: the "
                                            "run's train.precision]."),
    cache: Optional[int] = typer.Option(None, "--cache", min=1, metavar="WINDOW", help="Mix in a neural cache "
                                        "over the last WINDOW positions (docs/adaptive-evaluation.md)."),
    cache_theta: Optional[float] = typer.Option(None, "--cache-theta", help="The cache's θ [default: 0.662]."),
    cache_lambda: Optional[float] = typer.Option(None, "--cache-lambda", help="The cache's weight λ [default: "
                                                 "0.1279]."),
    dynamic: bool = typer.Option(False, "--dynamic", help="Dynamic evaluation: adapt the weights (in memory) to "
                                 "the text as it is read."),
    dynamic_lr: Optional[float] = typer.Option(None, "--dynamic-lr", help="Its step size η [default: 4e-5 × "
                                               "segment / 20]."),
    dynamic_decay: Optional[float] = typer.Option(None, "--dynamic-decay", help="Its decay λ toward the trained "
                                                  "weights [default: 0.001 × segment / 20]."),
    dynamic_segment: Optional[int] = typer.Option(None, "--dynamic-segment", min=1, help="Tokens per update "
                                                  "[default: 20]."),
    dynamic_train_tokens: Optional[int] = typer.Option(None, "--dynamic-train-tokens", min=1, help="Training "
                                                       "tokens for its gradient statistics [default: 100000]."),
    tune: bool = typer.Option(False, "--tune", help="Choose the settings of --cache / --dynamic on the valid "
                              "split, then report valid and --split."),
    tune_tokens: Optional[int] = typer.Option(None, "--tune-tokens", min=1, help="Valid tokens the dynamic "
                                              "search reads [default: 30000]."),
) -> None:
    """Perplexity (and bits per character for character models) of the best weights, plain or with the neural
    cache and dynamic evaluation."""
    from .evaluate.adaptive import AdaptiveOptions, evaluate_adaptive_run, report_lines
    from .evaluate.perplexity import evaluate_run
    from .hardware.device import resolve_device

    adaptive = AdaptiveOptions(cache, cache_theta, cache_lambda, dynamic, dynamic_lr, dynamic_decay, dynamic_segment,
                               dynamic_train_tokens, tune, tune_tokens)
    adaptive.check(batch_size)
    if adaptive.wanted:
        report = evaluate_adaptive_run(run_dir, split, file, resolve_device(device), adaptive, batch_size, precision)
        print(json.dumps(report) if as_json else "\n".join(report_lines(report)))
        return
    report = evaluate_run(run_dir, split, file, resolve_device(device), batch_size, precision)
    if as_json:
        print(json.dumps(report))
        return
    line = f"{report['split']}: {report['tokens']:,} tokens | loss {report['loss']:.4f} | ppl {report['ppl']:.2f}"
    if "bpc" in report:
        line += f" | bpc {report['bpc']:.4f}"
    print(line)


@app.command()
@user_errors_exit
def sample(
    run_dir: Path = typer.Argument(..., help="A run directory made by `lstm-lm train`."),
    prompt: str = typer.Option("", "--prompt", "-p", help="Text the sample continues."),
    tokens: int = typer.Option(100, "--tokens", "-n", min=1, help="Tokens to generate per sample."),
    temperature: float = typer.Option(1.0, "--temperature", "-t", min=0.0, help="0 is greedy."),
    top_k: int = typer.Option(0, "--top-k", min=0, help="Keep only the k most likely tokens (0: all)."),
    top_p: float = typer.Option(1.0, "--top-p", max=1.0,
                                help="Keep the smallest set of tokens whose probability reaches p (0 < p <= 1)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="The same seed gives the same text."),
    num_samples: int = typer.Option(1, "--num-samples", min=1, help="Independent samples to draw."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """Generate text from a prompt, streamed as it is generated."""
    from .evaluate.generate import generate, stream_text
    from .hardware.device import resolve_device
    from .rundir.run_files import load_run

    if not 0 < top_p <= 1:
        raise UserError(f"--top-p {top_p}: must be above 0 and at most 1")
    target = resolve_device(device)
    run = load_run(run_dir, target)
    unknown = run.tokenizer.unknown_words(prompt)
    if unknown:
        stderr.print(f"warning: not in the vocabulary, read as <unk>: {', '.join(unknown)}")
    prompt_ids = run.tokenizer.encode(prompt)
    started = time.perf_counter()
    for index in range(num_samples):
        if num_samples > 1:
            print(f"--- sample {index + 1} ---")
        sys.stdout.write(prompt)
        sample_seed = None if seed is None else seed + index
        continuation = generate(run.model, run.tokenizer, prompt_ids, tokens, temperature=temperature, top_k=top_k,
                                top_p=top_p, seed=sample_seed, device=target)
        shown = run.tokenizer.decode(prompt_ids)
        for piece in stream_text(run.tokenizer, prompt_ids, continuation):
            sys.stdout.write(piece)
            sys.stdout.flush()
            shown += piece
        if not (prompt + shown).endswith("\n"):
            sys.stdout.write("\n")
    seconds = time.perf_counter() - started
    stderr.print(f"{tokens * num_samples:,} tokens in {seconds:.2f} s ({tokens * num_samples / seconds:,.0f} "
                 f"tokens/s)")


@app.command()
@user_errors_exit
def plot(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR...", help="Run directories to draw together."),
    output: Path = typer.Option(Path("curves.png"), "--output", "-o", help="Image to write (.png, .pdf, .svg)."),
) -> None:
    """Training curves from metrics.jsonl: perplexity against tokens and wall time, and the learning rate."""
    from .evaluate.curves import plot_curves

    plot_curves(run_dirs, output)
    print(f"wrote {output}")


@app.command()
@user_errors_exit
def surprisal(
    run_dir: Path = typer.Argument(..., help="A run directory (trained, or made by `lstm-lm import`)."),
    file: Path = typer.Argument(..., help="Text with one sentence per line."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the TSV here [default: stdout]."),
    words: bool = typer.Option(False, "--words", help="One row per input word, its pieces' surprisals summed."),
    entropy: bool = typer.Option(False, "--entropy", help="Add the entropy of each next-token distribution."),
    context: str = typer.Option("sentence", "--context",
                                help="sentence: each line from a fresh state; document: the state carried on."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Sentences scored together."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """Each token's surprisal in bits, as lm-zoo's TSV (sentence_id, token_id, token, surprisal)."""
    from .agreement.surprisal_command import surprisal_run

    counts = surprisal_run(run_dir, file, output, words=words, entropy=entropy, context=context,
                           batch_size=batch_size, device=device)
    stderr.print(f"{counts['sentences']:,} sentences, {counts['tokens']:,} tokens in {counts['seconds']:.2f} s "
                 f"({counts['tokens'] / max(counts['seconds'], 1e-9):,.0f} tokens/s)")


@app.command(name="import")
@user_errors_exit
def import_command(
    model_file: Path = typer.Argument(..., metavar="MODEL.pt",
                                      help="A whole RNNModel saved by the PyTorch word_language_model example or "
                                           "colorlessgreenRNNs (torch.save(model)), either file format."),
    out: Path = typer.Option(..., "--out", "-o", help="The run directory to write."),
    vocab: Optional[Path] = typer.Option(None, "--vocab", help="The vocabulary: one token per line, id = line."),
    corpus: Optional[Path] = typer.Option(None, "--corpus",
                                          help="The directory the model was trained on (train.txt, valid.txt, "
                                               "test.txt): rebuilds the example's own vocabulary."),
    force: bool = typer.Option(False, "--force", help="Replace a run already in --out."),
) -> None:
    """Turn a model trained elsewhere into a run directory, reading its tensors without running its pickle."""
    from .foreign.import_run import import_run

    info = import_run(model_file, out, vocab=vocab, corpus=corpus, force=force)
    source = info["imported_from"]
    print(f"imported {source['model']}, {info['parameters']:,} parameters, vocabulary {info['vocab_size']:,}, "
          f"from {source['format']} file into {out}")


@app.command(name="export")
@user_errors_exit
def export_command(
    run_dir: Path = typer.Argument(..., help="A run directory made by `lstm-lm train`."),
    format_name: str = typer.Option(..., "--format", help="onnx (for onnxruntime; needs pip install -e "
                                    "'.\\[export]') or torchscript (for torch.jit.load)."),
    output: Path = typer.Option(..., "--output", "-o", help="The file to write; FILE.json beside it describes it."),
) -> None:
    """The best weights as a step function, token ids and state in, log-probabilities and new state out, that
    runs without lstm-lm (see docs/export.md)."""
    from .export.command import export_run

    report = export_run(run_dir, format_name, output)
    state = ", ".join(f"{part['input']} {tuple(part['shape'])}" for part in report["state"])
    print(f"wrote {report['file']} ({report['format']}, {report['bytes'] / 1e6:.1f} MB; state {state}) and "
          f"{report['sidecar']}")
    if report["max_difference"] is None:
        print("not checked against lstm-lm: onnxruntime is not installed")
    else:
        print(f"checked against lstm-lm: log-probabilities and state within {report['max_difference']:.1e}")


@app.command(name="eval-agreement")
@user_errors_exit
def eval_agreement(
    run_dir: Optional[Path] = typer.Argument(None, metavar="RUN_DIR", help="A run directory made by `lstm-lm "
                                             "train` (with --plot: the image to write, .png, .pdf or .svg)."),
    paths: Optional[list[Path]] = typer.Argument(None, metavar="FILE_OR_DIR", help="Test files, or "
                                                 "directories of them; none: the built-in suite."),
    format_name: str = typer.Option("auto", "--format", help="auto, pairs-jsonl, pairs-tsv, linzen, gulordava or "
                                    "syntaxgym."),
    method: str = typer.Option("auto", "--method", help="auto (each format's own), sentence or target."),
    skip_oov: bool = typer.Option(False, "--skip-oov", help="Leave out pairs whose deciding words are out of "
                                  "vocabulary (SyntaxGym: predictions that read a region with <unk>)."),
    output: Optional[Path] = typer.Option(None, "--output", help="Write the report as JSON."),
    items: Optional[Path] = typer.Option(None, "--items", help="Write one JSON line per item, with its scores."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, show_default="256",
                                             help="Pairs per forward pass."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    precision: str = typer.Option("fp32", "--precision", help="Scoring precision: fp32, bf16 (faster on CPUs "
                                  "with AMX and on GPUs; close calls may flip), fp16 or auto."),
    prefix: Optional[str] = typer.Option(None, "--prefix", help="Probe: the words before the candidates."),
    candidates: Optional[str] = typer.Option(None, "--candidates", help="Probe: comma-separated words to rank "
                                             "after --prefix, e.g. were,was."),
    write_suite: Optional[Path] = typer.Option(None, "--write-suite", help="Write the built-in suite as pairs JSON "
                                               "Lines."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw this report (written by --output) into the "
                                        "image named by the argument."),
    strict: bool = typer.Option(False, "--strict", help="Refuse a file with a malformed item (two forms the same "
                                "word, an empty sentence) rather than skip the item with a warning."),
) -> None:
    """Does the model prefer "the flights the airline was cancelling were full" to "... was full"? Accuracy on
    agreement test sets (see docs/agreement.md)."""
    from .agreement.command import eval_agreement as run_eval_agreement

    run_eval_agreement(run_dir, paths or [], console=Console(highlight=False), warn=stderr, format_name=format_name,
                       method=method, skip_oov=skip_oov, output=output, items=items, batch_size=batch_size,
                       device=device, precision=precision, prefix=prefix, candidates=candidates,
                       write_suite=write_suite, plot=plot, strict=strict)
