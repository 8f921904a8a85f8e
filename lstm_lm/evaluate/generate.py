"""Sampling text from a model: temperature, top-k, top-p (nucleus), greedy at temperature 0; and the text as it
comes, token by token."""

from __future__ import annotations

from typing import Iterable, Iterator

import torch

from ..data.tokenizers import Tokenizer
from ..model.language_model import LanguageModel


def pick_token(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
               generator: torch.Generator) -> int:
    """Choose the next token from logits (V,): argmax at temperature 0, else a draw from the filtered softmax."""
    if temperature == 0:
        return int(logits.argmax())
    logits = logits.float().cpu() / temperature  # sampled on the CPU so a seed gives the same text everywhere
    if 0 < top_k < logits.numel():
        kth_largest = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p < 1.0:
        probabilities, order = torch.softmax(logits, dim=-1).sort(descending=True)
        # Keep the smallest set of most likely tokens whose mass reaches top_p: a token is dropped when the
        # mass before it already does.
        mass_before = probabilities.cumsum(0) - probabilities
        logits[order[mass_before >= top_p]] = float("-inf")
    return int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator))


@torch.inference_mode()
def generate(model: LanguageModel, tokenizer: Tokenizer, prompt_ids: list[int], count: int, *,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
             device: torch.device = torch.device("cpu")) -> Iterator[int]:
    """Yield `count` token ids continuing the prompt; the model starts primed with the line-boundary token."""
    model.eval()
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    start = [tokenizer.boundary_id] if tokenizer.boundary_id is not None else []
    primer = start + prompt_ids or [tokenizer.unk_id]
    hidden = model.init_hidden(1)
    logits, hidden = model(torch.tensor(primer, device=device).view(-1, 1), hidden)  # (T, 1, V)
    for _ in range(count):
        token = pick_token(logits[-1, 0], temperature, top_k, top_p, generator)
        yield token
        logits, hidden = model(torch.tensor([[token]], device=device), hidden)


def stream_text(tokenizer: Tokenizer, prompt_ids: list[int], tokens: Iterable[int]) -> Iterator[str]:
    """The text each new token adds after the prompt's, ready to print as it comes; together they are the
    decoded continuation. A byte model's character can take several tokens: until the last one comes, its first
    bytes decode to U+FFFD, so trailing U+FFFD waits for the next token (or the end) before it is given."""
    ids = list(prompt_ids)
    shown = tokenizer.decode(ids)
    for token in tokens:
        ids.append(token)
        text = tokenizer.decode(ids).rstrip("\ufffd")
        yield text[len(shown):]
        shown = text
    yield tokenizer.decode(ids)[len(shown):]
