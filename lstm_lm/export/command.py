"""`lstm-lm export`: the library function the command line calls. Everything is built and checked in memory, then
the file and its JSON description are written, each atomically: a failure leaves no file behind, and an older
export at the same path intact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_bytes, atomic_write_text
from ..errors import UserError
from ..rundir.layout import WEIGHTS
from ..rundir.run_files import load_run
from .check import check_export
from .sidecar import sidecar, sidecar_path, sidecar_text
from .step_module import StepModule
from .to_onnx import onnx_bytes
from .to_torchscript import torchscript_bytes

WRITERS = {"onnx": onnx_bytes, "torchscript": torchscript_bytes}


def export_run(run_dir: Path, format_name: str, output: Path) -> dict[str, Any]:
    """Write the run's best weights as a step function in `format_name` to `output`, and OUTPUT.json beside it.
    Returns what was written: the paths, the file's size, and the largest difference from lstm-lm found by the
    check (None where the runtime to run it, onnxruntime, is not installed)."""
    if format_name not in WRITERS:
        raise UserError(f"--format {format_name!r}: choose one of {', '.join(WRITERS)}")
    if output.is_dir():
        raise UserError(f"{output}: is a directory; give the file to write, e.g. {output / ('model.' + format_name)}")
    run = load_run(run_dir, torch.device("cpu"))
    step = StepModule(run.model)
    data = WRITERS[format_name](step)
    difference = check_export(format_name, data, run.model, step)
    description = sidecar(format_name, output, step, run.model, run.tokenizer, Path(run_dir), WEIGHTS)
    atomic_write_bytes(output, data)
    atomic_write_text(sidecar_path(output), sidecar_text(description))
    return {"file": str(output), "sidecar": str(sidecar_path(output)), "format": format_name, "bytes": len(data),
            "max_difference": difference, "state": description["state"]}
