"""`lstm-lm surprisal`: every token's surprisal, -log2 p(token | what came before), one sentence per input line,
as the TSV lm-zoo's `get-surprisals` writes (`sentence_id	token_id	token	surprisal`, ids from 1), so that the
analysis scripts of the field read it unchanged.

    context sentence   each line from a fresh state primed with the boundary token (<eos>), scored in batches
                       of lines of about the same length; every token's surprisal, the first included
    context document   the lines as one text, the state carried across them (each line still ends with <eos>,
                       which is read but not reported)

A word-level model reads each input word split the way its corpus was written (agreement/pretokenize.py: "dog's"
is "dog 's" for PTB); character and BPE models read the line as it is. `words` sums each input word's pieces
into one row (the convention of minicons and SyntaxGym); a character or BPE model's space goes with the word
after it. An input word the model has no token for (a "." for PTB, whose corpus has none) has surprisal nan.
Tokens the vocabulary lacks are scored as <unk>, shown as such, and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ..data.tokenizers import Tokenizer, WordTokenizer
from ..model.language_model import LanguageModel
from ..reading import read_text
from ..targets import IGNORE
from .pretokenize import word_splitter
from .scoring import padded_columns

BITS = 1 / math.log(2)
HEADER = ("sentence_id", "token_id", "token", "surprisal")
ROWS_PER_PASS = 4096  # positions whose next-token distribution is formed at once: (4096, V) fp32


@dataclass
class Sentence:
    number: int  # its line in the file, from 1: lm-zoo's sentence_id
    ids: list[int]  # the model's tokens
    words: list[str]  # the input's whitespace-separated words
    owners: list[int]  # for each token, the index of the word it belongs to


@dataclass
class Scored:
    sentence: Sentence
    surprisals: list[float]  # bits, one per token
    entropies: list[float] | None  # bits, of the distribution each token was drawn from


def read_sentences(path: Path, tokenizer: Tokenizer) -> list[Sentence]:
    """One sentence per non-blank line (blank lines are skipped but keep the numbering of the others)."""
    split = word_splitter(tokenizer)
    sentences = []
    for number, line in enumerate(read_text(path, "utf-8").splitlines(), 1):
        if line.strip():
            sentences.append(encode_sentence(number, line.strip(), tokenizer, split))
    return sentences


def encode_sentence(number: int, line: str, tokenizer: Tokenizer, split) -> Sentence:
    words = line.split()
    if isinstance(tokenizer, WordTokenizer):
        ids, owners = [], []
        for index, word in enumerate(words):
            for piece in split(word):
                ids.append(tokenizer.stoi.get(piece, tokenizer.unk_id))
                owners.append(index)
        return Sentence(number, ids, words, owners)
    ids, spans = tokenizer.encode_with_spans(line)
    starts = [position for position, character in enumerate(line) if not character.isspace()
              and (position == 0 or line[position - 1].isspace())]
    # A token belongs to the last word starting at or before its first character that is not a space: a space
    # before a word goes with that word.
    owners = []
    for start, end in spans:
        first = next((p for p in range(start, end) if not line[p].isspace()), end)
        owners.append(max(sum(1 for word_start in starts if word_start <= first) - 1, 0))
    return Sentence(number, ids, words, owners)


@torch.inference_mode()
def score_sentences(model: LanguageModel, boundary_id: int, sentences: list[Sentence], *, batch_size: int,
                    entropy: bool) -> list[Scored]:
    """Each sentence from a fresh state primed with the boundary token, `batch_size` sentences of about the same
    length per pass. The rows are padded at their ends rather than packed: a position never depends on what
    follows it, and the unpacked layers run the fused CPU kernels, which packed sequences cannot (they took ten
    times as long on the PTB 1-hour model)."""
    model.eval()
    device = model.embedding.weight.device
    by_length = sorted((s for s in sentences if s.ids), key=lambda s: len(s.ids))
    found: dict[int, Scored] = {s.number: Scored(s, [], [] if entropy else None) for s in sentences if not s.ids}
    for start in range(0, len(by_length), batch_size):
        batch = by_length[start: start + batch_size]
        inputs = padded_columns([[boundary_id, *s.ids[:-1]] for s in batch], boundary_id, device)  # (T, B)
        targets = padded_columns([s.ids for s in batch], IGNORE, device)
        output, _ = model.rnn(model.embed(inputs), model.init_hidden(len(batch)))  # (T, B, H)
        kept = targets != IGNORE
        surprisal, spread = position_scores(model, output[kept], targets[kept], entropy)
        # output[kept] lists positions row by row of the (T, B) grid, time first: back to each sentence's order
        positions = kept.nonzero().tolist()
        rows: list[list[int]] = [[] for _ in batch]
        for index, (_, column) in enumerate(positions):
            rows[column].append(index)
        for column, sentence in enumerate(batch):
            found[sentence.number] = Scored(sentence, surprisal[rows[column]].tolist(),
                                            spread[rows[column]].tolist() if entropy else None)
    return [found[sentence.number] for sentence in sentences]


@torch.inference_mode()
def score_document(model: LanguageModel, boundary_id: int, sentences: list[Sentence], *, window: int,
                   entropy: bool) -> list[Scored]:
    """The lines as one stream, the state carried from line to line: [<eos>, s1..., <eos>, s2..., <eos>]."""
    model.eval()
    stream = [boundary_id]
    for sentence in sentences:
        stream += [*sentence.ids, boundary_id]
    inputs, targets = torch.tensor(stream[:-1]), torch.tensor(stream[1:])
    hidden = model.init_hidden(1)
    surprisal, spread = [], []
    device = model.embedding.weight.device
    for start in range(0, len(inputs), window):
        chunk = inputs[start: start + window].view(-1, 1).to(device)
        output, hidden = model.rnn(model.embed(chunk), hidden)  # (T, 1, H)
        values = position_scores(model, output[:, 0], targets[start: start + window].to(device), entropy)
        surprisal += values[0].tolist()
        spread += values[1].tolist() if entropy else []
    scored, position = [], 0
    for sentence in sentences:
        count = len(sentence.ids)
        scored.append(Scored(sentence, surprisal[position: position + count],
                             spread[position: position + count] if entropy else None))
        position += count + 1  # the line's own <eos> is read, not reported
    return scored


def position_scores(model: LanguageModel, outputs: torch.Tensor, targets: torch.Tensor,
                    entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Top-layer outputs (N, H) and the tokens that followed (N,) -> surprisal (N,) in bits, and the entropy (N,)
    of each next-token distribution in bits when asked (it needs the whole distribution; surprisal alone does not
    with the adaptive softmax)."""
    surprisal, spread = [], []
    for start in range(0, len(targets), ROWS_PER_PASS):
        features = model.output_features(outputs[start: start + ROWS_PER_PASS])
        wanted = targets[start: start + ROWS_PER_PASS]
        if entropy:
            log_probs = model.next_token_log_probs(features)  # (n, V), fp32
            surprisal.append(-log_probs.gather(1, wanted.unsqueeze(1)).squeeze(1) * BITS)
            spread.append(-(log_probs.exp() * log_probs).sum(1) * BITS)
        else:
            surprisal.append(-model.target_log_probs(features, wanted).float() * BITS)
    return torch.cat(surprisal).cpu(), torch.cat(spread).cpu() if entropy else None


def table_rows(scored: list[Scored], tokenizer: Tokenizer, words: bool) -> Iterator[list[str]]:
    """The TSV's rows after its header: per token, or per input word with its pieces summed."""
    for item in scored:
        sentence = item.sentence
        if not words:
            for index, token in enumerate(sentence.ids):
                yield [str(sentence.number), str(index + 1), shown_token(tokenizer, token),
                       *number_cells(item, [index])]
            continue
        for index, word in enumerate(sentence.words):
            pieces = [position for position, owner in enumerate(sentence.owners) if owner == index]
            yield [str(sentence.number), str(index + 1), word, *number_cells(item, pieces)]


def number_cells(item: Scored, positions: list[int]) -> list[str]:
    """The surprisal (and entropy) cells of a token or of a word's pieces; a word with no piece has nan. A word's
    entropy is that of the distribution its first piece was drawn from."""
    if not positions:
        return ["nan"] * (1 if item.entropies is None else 2)
    cells = [f"{sum(item.surprisals[p] for p in positions):.6f}"]
    if item.entropies is not None:
        cells.append(f"{item.entropies[positions[0]]:.6f}")
    return cells


def shown_token(tokenizer: Tokenizer, token: int) -> str:
    text = tokenizer.decode([token]) if token != tokenizer.unk_id else "<unk>"
    return text.replace("\t", "\\t").replace("\n", "\\n")
