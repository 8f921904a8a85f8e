"""Matrix products shaped for oneDNN's bf16 kernels on the CPU: x @ Wᵀ + b for a wide weight W (V, D), the
weights' gradients gradᵀ @ rows, and products whose row count falls where oneDNN's choice of kernel is slow.

Why each shape (timings in docs/performance.md, "Products shaped for oneDNN"): oneDNN runs a product against a
whole wide transposed weight well below its block-wise speed; adding a bias to an (N, V) result is a broadcast
pass as long as the product, while a bias column against a column of ones costs nothing; some row counts between
about 450 and 1,200 run 2-3 times slower per row than their neighbours, so long products go in row blocks; and a
column-major left operand runs at half speed, so weight gradients are computed transposed and cast back. fp32
products go to MKL on the CPU and to cuBLAS on CUDA, which need none of this: plain products run there.
"""

from __future__ import annotations

import torch

COLUMNS_PER_BLOCK = 2048
ROWS_PER_BLOCK = 384
ROW_BLOCKS_BELOW = 1536  # from 1,536 rows on the whole product is faster again


def with_bias_column(weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """(V, D) weight and (V,) bias -> (V, D + 1) in `dtype`, the bias last; one cast pass, as weight.to(dtype)."""
    if bias is None:
        return weight.to(dtype)
    combined = torch.empty(weight.size(0), weight.size(1) + 1, dtype=dtype, device=weight.device)
    combined[:, :-1] = weight
    combined[:, -1] = bias
    return combined


def with_ones_column(x: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N, D + 1), a column of ones last: the input that multiplies the bias column."""
    return torch.cat([x, x.new_ones(x.size(0), 1)], dim=1)


def shaped_for_onednn(x: torch.Tensor) -> bool:
    """Whether the shapes below apply: bf16 on the CPU, the case they were measured for."""
    return x.device.type == "cpu" and x.dtype == torch.bfloat16


def linear_by_blocks(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(N, K) @ (V, K)ᵀ -> (N, V), in bf16 on the CPU in blocks of output columns (see the module's notes)."""
    if not shaped_for_onednn(x):
        return x @ weight.t()
    out = x.new_empty(x.size(0), weight.size(0))
    for start in range(0, weight.size(0), COLUMNS_PER_BLOCK):
        block = slice(start, start + COLUMNS_PER_BLOCK)
        torch.mm(x, weight[block].t(), out=out[:, block])
    return out


def matmul_by_row_blocks(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(M, K) @ (K, N) -> (M, N), in bf16 on the CPU in blocks of 384 rows where M lies in oneDNN's slow range
    (see the module's notes)."""
    rows = a.size(0)
    if not shaped_for_onednn(a) or not ROWS_PER_BLOCK < rows < ROW_BLOCKS_BELOW:
        return a @ b
    out = a.new_empty(rows, b.size(1))
    for start in range(0, rows, ROWS_PER_BLOCK):
        torch.mm(a[start: start + ROWS_PER_BLOCK], b, out=out[start: start + ROWS_PER_BLOCK])
    return out


def weight_gradients(grad: torch.Tensor, row_blocks: list[torch.Tensor], widths: list[int],
                     dtype: torch.dtype) -> list[torch.Tensor]:
    """gradᵀ @ rows for grad (N, V) and rows the (N, K) side-by-side concatenation of `row_blocks`, cut along K
    into `widths`: one contiguous (V, width) gradient in `dtype` per weight (or bias, width 1) that multiplied
    those columns of the rows. In bf16 on the CPU computed transposed (see the module's notes)."""
    if shaped_for_onednn(grad):
        product_t = torch.cat([block.t() for block in row_blocks]) @ grad  # (K, V)
        return [torch.empty(grad.size(1), piece.size(0), dtype=dtype, device=grad.device).copy_(piece.t())
                for piece in product_t.split(widths)]
    rows = torch.cat(row_blocks, dim=1) if len(row_blocks) > 1 else row_blocks[0]
    return [(grad.t() @ part).to(dtype) for part in rows.split(widths, dim=1)]
