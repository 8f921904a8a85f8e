"""CPU-speed code with no model in it: the written LSTM layer loop and its backward (cpu_lstm.py), the decoder's
fused loss (losses.py), and matrix products shaped for oneDNN's bf16 kernels (products.py). Why each exists,
with its measurements: docs/performance.md.

Imports: torch and the common modules only.
"""
