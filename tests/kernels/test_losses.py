import pytest
import torch
import torch.nn.functional as F

from lstm_lm.kernels import losses, products
from lstm_lm.kernels.losses import decoder_nll


def reference(features, weight, bias, targets, token_weights):
    """F.cross_entropy over fp32 logits; returns the nll and the gradients of features, weight and bias."""
    leaves = [t.detach().float().requires_grad_(True) for t in (features, weight, bias)]
    nll = F.cross_entropy(F.linear(*leaves), targets, reduction="none")
    (nll * token_weights).sum().backward()
    return nll.detach(), [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("precision, tolerance", [(None, 1e-5), (torch.bfloat16, 2e-2)])
def test_decoder_nll_matches_cross_entropy_in_value_and_gradients(monkeypatch, precision, tolerance):
    # several loss chunks, a ragged last one, and several column blocks of the product
    monkeypatch.setitem(losses.CHUNK_ELEMENTS, "cpu", 8 * 50)
    monkeypatch.setattr(products, "COLUMNS_PER_BLOCK", 16)
    torch.manual_seed(0)
    features = torch.randn(37, 12, requires_grad=True)
    weight = torch.randn(50, 12, requires_grad=True)
    bias = torch.randn(50, requires_grad=True)
    targets = torch.randint(50, (37,))
    token_weights = torch.randn(37)
    expected, expected_grads = reference(features, weight, bias, targets, token_weights)
    with torch.autocast("cpu", dtype=precision or torch.float32, enabled=precision is not None):
        actual = decoder_nll(features, weight, bias, targets)
    (actual * token_weights).sum().backward()
    assert actual.dtype == torch.float32
    assert [t.grad.dtype for t in (features, weight, bias)] == [torch.float32] * 3
    # bf16 rounds the product's inputs, so its values move by about 1%; the normalizer itself is taken in fp32
    assert torch.allclose(actual, expected, atol=1e-4 if precision is None else 0.15)
    for tensor, grad in zip((features, weight, bias), expected_grads):
        assert torch.allclose(tensor.grad, grad, atol=tolerance * grad.abs().max())


def test_decoder_nll_without_bias_and_in_evaluation():
    torch.manual_seed(1)
    features, weight = torch.randn(9, 6, requires_grad=True), torch.randn(11, 6, requires_grad=True)
    targets = torch.randint(11, (9,))
    expected = F.cross_entropy(features @ weight.t(), targets, reduction="none")
    assert torch.allclose(decoder_nll(features, weight, None, targets), expected, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(decoder_nll(features, weight, None, targets), expected, atol=1e-6)


def test_confident_targets_keep_their_small_bf16_gradient():
    # p(target) = 0.999: the target's gradient p - 1 = -0.001 must be formed in fp32 before rounding to bf16;
    # rounding p first and subtracting 1 in bf16 gives 0 or -0.0039. With an identity decoder the features'
    # gradient is the logits' gradient.
    logits = torch.zeros(4, 10)
    logits[:, 3] = torch.log(torch.tensor(0.999 * 9 / 0.001))
    features = logits.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        decoder_nll(features, torch.eye(10), None, torch.full((4,), 3)).sum().backward()
    p = torch.softmax(logits.to(torch.bfloat16).float(), dim=-1)[0, 3]
    assert features.grad[:, 3] == pytest.approx([float(p - 1)] * 4, rel=1e-2)


def test_decoder_nll_gradcheck_in_float64():
    torch.manual_seed(2)
    inputs = [torch.randn(5, 4, dtype=torch.float64, requires_grad=True),
              torch.randn(7, 4, dtype=torch.float64, requires_grad=True),
              torch.randn(7, dtype=torch.float64, requires_grad=True)]
    targets = torch.tensor([0, 3, 6, 2, 2])
    assert torch.autograd.gradcheck(lambda x, w, b: decoder_nll(x, w, b, targets), inputs)


def test_linear_by_blocks_with_the_bias_as_a_column(monkeypatch):
    monkeypatch.setattr(products, "COLUMNS_PER_BLOCK", 7)  # 3 blocks, the last one ragged
    torch.manual_seed(3)
    x, weight, bias = torch.randn(5, 4), torch.randn(20, 4), torch.randn(20)
    actual = products.linear_by_blocks(products.with_ones_column(x),
                                       products.with_bias_column(weight, bias, torch.float32))
    assert torch.allclose(actual, F.linear(x, weight, bias), atol=1e-6)


def test_matmul_by_row_blocks_equals_the_whole_product(monkeypatch):
    monkeypatch.setattr(products, "ROWS_PER_BLOCK", 4)  # 10 rows: blocks of 4, 4 and 2
    monkeypatch.setattr(products, "ROW_BLOCKS_BELOW", 100)
    torch.manual_seed(4)
    a, b = torch.randn(10, 6), torch.randn(6, 3)
    assert torch.allclose(products.matmul_by_row_blocks(a, b), a @ b, atol=1e-6)
