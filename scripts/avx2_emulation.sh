#!/usr/bin/env bash
# Run a command as on a CPU with AVX2 only (no AVX-512, no AMX, no bf16 units), the class of most laptops and many
# servers, on a newer Intel CPU: oneDNN (LSTM kernels, bf16 products), ATen (element-wise kernels) and MKL (fp32
# products) each capped at AVX2. Checked on an AMX Xeon: oneDNN's verbose log says "isa:Intel AVX2", MKL's
# "AVX2 enabled processors", and the bf16 failures of a real AVX2 machine (oneDNN refusing the bf16 LSTM) come
# back. /proc/cpuinfo still lists the real flags; lstm-lm settles bf16 by trying a kernel, so it sees AVX2.
#   scripts/avx2_emulation.sh python -m pytest -q
#   scripts/avx2_emulation.sh python scripts/bench_train.py
export ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
exec "$@"
