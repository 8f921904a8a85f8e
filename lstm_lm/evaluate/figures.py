"""Saving matplotlib figures: the type from the file name, written atomically, no display and no pyplot state."""

from __future__ import annotations

import io
from pathlib import Path

from ..atomic import atomic_write_bytes
from ..errors import UserError

IMAGE_TYPES = ("png", "pdf", "svg")


def image_type(path: Path) -> str:
    """png, pdf or svg from the suffix; checked before any drawing so a bad name costs nothing."""
    kind = path.suffix.lstrip(".").lower()
    if kind not in IMAGE_TYPES:
        raise UserError(f"{path}: cannot tell the image type; end the name in .png, .pdf or .svg")
    return kind


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure  # imported here: only the plotting commands need matplotlib

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(figure, path: Path, dpi: int) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=image_type(path), dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())
