"""The language model: embedding ─> recurrent layers (the cell chosen by config) ─> dropout ─> decoder.

    language_model.py  LanguageModel: forward(tokens, hidden, targets) -> per-token losses (or logits), hidden
    cells.py           the fused cells and the cells written from the equations (peephole, coupled)
    fast_lstm.py       nn.LSTM that trains through the written CPU loop where that is faster
    stack.py           layers of different widths, and weight drop on their recurrent matrices
    softmax.py         the adaptive softmax
    regularization.py  dropouts (plain, locked, embedding, weight drop) and the AR/TAR penalties
    memory.py          allocating a model, refused with one line when it cannot fit
    sizing.py          the hidden size that matches another cell's recurrent parameter count

Imports: the kernels and the common modules only; never data, training or the run directory.
"""

from .language_model import LanguageModel

__all__ = ["LanguageModel"]
