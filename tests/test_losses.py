import pytest
import torch
import torch.nn.functional as F

from lstm_lm.losses import ROWS_PER_CHUNK, token_nll


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
def test_token_nll_matches_cross_entropy_in_value_and_gradient(dtype, tolerance):
    torch.manual_seed(0)
    rows = 2 * ROWS_PER_CHUNK + 7  # several chunks and a ragged last one
    logits = (3 * torch.randn(rows, 50)).to(dtype).requires_grad_(True)
    targets = torch.randint(50, (rows,))
    weights = torch.randn(rows)
    expected = F.cross_entropy(logits.float(), targets, reduction="none")
    (expected * weights).sum().backward()
    expected_grad, logits.grad = logits.grad.float(), None
    actual = token_nll(logits, targets)
    (actual * weights).sum().backward()
    assert actual.dtype == torch.float32 and logits.grad.dtype == dtype
    assert torch.allclose(actual, expected, atol=1e-5)
    assert torch.allclose(logits.grad.float(), expected_grad, atol=tolerance)


def test_confident_targets_keep_their_small_bf16_gradient():
    # p(target) = 0.999: the target's gradient p - 1 = -0.001 must be formed in fp32 before rounding to bf16;
    # rounding p first and subtracting 1 in bf16 gives 0 or -0.0039
    logits = torch.zeros(4, 10)
    logits[:, 3] = torch.log(torch.tensor(0.999 * 9 / 0.001))
    logits = logits.to(torch.bfloat16).requires_grad_(True)
    token_nll(logits, torch.full((4,), 3)).sum().backward()
    p = torch.softmax(logits.detach().float(), dim=-1)[0, 3]
    assert logits.grad[:, 3].float() == pytest.approx([float(p - 1)] * 4, rel=1e-2)


def test_token_nll_gradcheck_in_float64():
    logits = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: token_nll(x, torch.tensor([0, 3, 6, 2, 2])), (logits,))
