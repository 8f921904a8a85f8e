"""`lstm-lm surprisal`'s library function: read the sentences, score them, write the TSV (atomically to --output,
or to stdout), and say on stderr how many tokens were <unk>."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import UserError, print_warning
from ..hardware.device import resolve_device
from ..rundir.run_files import load_run
from .surprisal import HEADER, read_sentences, score_document, score_sentences, table_rows

CONTEXTS = ("sentence", "document")


def surprisal_run(run_dir: Path, file: Path, output: Path | None, *, words: bool, entropy: bool, context: str,
                  batch_size: int, device: str) -> dict[str, float]:
    """Score every line of `file`; returns the counts and the time taken, for the command's summary line."""
    if context not in CONTEXTS:
        raise UserError(f"--context {context}: use sentence or document")
    run = load_run(run_dir, resolve_device(device))
    sentences = read_sentences(file, run.tokenizer)
    if not sentences:
        raise UserError(f"{file}: no sentences (one per line)")
    started = time.perf_counter()
    boundary = run.tokenizer.boundary_id
    if boundary is None:
        raise UserError(f"{run_dir}: its tokenizer has no boundary token to start a sentence from")
    if context == "sentence":
        scored = score_sentences(run.model, boundary, sentences, batch_size=batch_size, entropy=entropy)
    else:
        scored = score_document(run.model, boundary, sentences, window=256, entropy=entropy)
    seconds = time.perf_counter() - started
    header = [*HEADER, *(["entropy"] if entropy else [])]
    lines = ["\t".join(header)] + ["\t".join(row) for row in table_rows(scored, run.tokenizer, words)]
    text = "\n".join(lines) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(output, text)
    tokens = sum(len(s.ids) for s in sentences)
    unknown = sum(token == run.tokenizer.unk_id for s in sentences for token in s.ids)
    if unknown:
        print_warning(f"warning: {unknown:,} of {tokens:,} tokens are not in the vocabulary and were scored as <unk>")
    return {"sentences": len(sentences), "tokens": tokens, "unknown": unknown, "seconds": seconds}
