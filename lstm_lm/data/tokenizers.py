"""Word, character and BPE tokenizers behind one small interface, saved as plain JSON.

Every tokenizer has an `<unk>` id for what training never saw and a `boundary_id`: the token that ends a line
(`<eos>` for word and BPE models, the newline character for character models). Evaluation and agreement scoring
prime the model with it, as if the text began a new line.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Iterable

from ..config import TokenizerConfig
from ..errors import UserError

UNK = "<unk>"
EOS = "<eos>"


class Tokenizer:
    """The interface every tokenizer offers; see the subclasses for how each one cuts text."""

    kind: str
    unk_id: int
    boundary_id: int | None
    lowercase: bool

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode_corpus(self, text: str) -> list[int]:
        """A whole corpus split: every line, with its line end, as ids."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        """A prompt or a sentence: no line end is added."""
        raise NotImplementedError

    def encode_with_spans(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """`encode(text)` and, for each id, the characters of `text` it came from (start, end): what lines tokens up
        with the parts of a sentence, such as a SyntaxGym suite's regions."""
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def unknown_words(self, text: str) -> list[str]:
        """Words of `text` the tokenizer maps to `<unk>` (empty for subword and byte tokenizers)."""
        return []


class WordTokenizer(Tokenizer):
    """Whitespace split; `<eos>` at each line end; words outside the vocabulary become `<unk>`."""

    kind = "word"

    def __init__(self, itos: list[str], lowercase: bool):
        self.itos = itos
        self.stoi = {token: i for i, token in enumerate(itos)}
        self.lowercase = lowercase
        self.unk_id = self.stoi[UNK]
        self.boundary_id = self.stoi[EOS]

    @classmethod
    def fit(cls, text: str, config: TokenizerConfig) -> WordTokenizer:
        counts = Counter()
        for line in text.splitlines():
            counts.update((line.lower() if config.lowercase else line).split())
        specials = [EOS, UNK]
        # Most frequent first; ties broken alphabetically so the vocabulary does not depend on dict order.
        ranked = sorted((t for t, n in counts.items() if n >= config.min_freq and t not in specials),
                        key=lambda t: (-counts[t], t))
        if config.max_size is not None:
            ranked = ranked[: config.max_size - len(specials)]
        return cls(specials + ranked, config.lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def words(self, text: str) -> list[str]:
        return (text.lower() if self.lowercase else text).split()

    def encode_corpus(self, text: str) -> list[int]:
        ids: list[int] = []
        lookup, unk = self.stoi.get, self.unk_id
        for line in text.splitlines():
            ids.extend(lookup(word, unk) for word in self.words(line))
            ids.append(self.boundary_id)
        return ids

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(word, self.unk_id) for word in self.words(text)]

    def encode_with_spans(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        spans = [match.span() for match in re.finditer(r"\S+", text)]
        return self.encode(text), spans  # lowercasing keeps whitespace where it was, so the words line up

    def decode(self, ids: Iterable[int]) -> str:
        pieces: list[str] = []
        for i in ids:
            word = self.itos[i]
            if word == EOS:
                pieces.append("\n")
            else:
                pieces.append(word if not pieces or pieces[-1] == "\n" else " " + word)
        return "".join(pieces)

    def unknown_words(self, text: str) -> list[str]:
        return [word for word in self.words(text) if word not in self.stoi]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "lowercase": self.lowercase, "itos": self.itos}


class CharTokenizer(Tokenizer):
    """Unicode characters or UTF-8 bytes; units unseen in training become `<unk>`. Newlines are ordinary units."""

    kind = "char"

    def __init__(self, units: list[str | int], unit: str, lowercase: bool):
        # units[0] is always <unk>; the rest are single characters (unit "unicode") or byte values ("byte").
        self.units = units
        self.unit = unit
        self.lowercase = lowercase
        self.index = {u: i for i, u in enumerate(units)}
        self.unk_id = 0
        self.boundary_id = self.index.get("\n" if unit == "unicode" else 10)

    @classmethod
    def fit(cls, text: str, config: TokenizerConfig) -> CharTokenizer:
        text = text.lower() if config.lowercase else text
        seen = set(text.encode("utf-8")) if config.char_unit == "byte" else set(text)
        return cls([UNK, *sorted(seen)], config.char_unit, config.lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.units)

    def split(self, text: str) -> Iterable[str | int]:
        text = text.lower() if self.lowercase else text
        return text.encode("utf-8") if self.unit == "byte" else text

    def encode(self, text: str) -> list[int]:
        lookup = self.index.get
        return [lookup(u, 0) for u in self.split(text)]

    encode_corpus = encode

    def encode_with_spans(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        # Character by character: lowercasing may turn one character into two (İ), and a byte model reads several
        # bytes for one character; each unit keeps the span of the character it came from.
        ids: list[int] = []
        spans: list[tuple[int, int]] = []
        for position, character in enumerate(text):
            units = self.encode(character)
            ids.extend(units)
            spans.extend([(position, position + 1)] * len(units))
        return ids, spans

    def decode(self, ids: Iterable[int]) -> str:
        units = [self.units[i] for i in ids]
        if self.unit == "byte":
            replacement = "\ufffd".encode("utf-8")
            return b"".join(bytes([u]) if isinstance(u, int) else replacement for u in units).decode(
                "utf-8", errors="replace")
        return "".join(u if u != UNK else "\ufffd" for u in units)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "unit": self.unit, "lowercase": self.lowercase, "units": self.units}


class BPETokenizer(Tokenizer):
    """Byte-pair encoding trained on the training split with Hugging Face `tokenizers`; `<eos>` ends each line."""

    kind = "bpe"

    def __init__(self, serialized: str, lowercase: bool):
        from tokenizers import Tokenizer as HFTokenizer

        self.model = HFTokenizer.from_str(serialized)  # plain JSON: loading it runs no code
        self.lowercase = lowercase
        self.unk_id = self.model.token_to_id(UNK)
        self.boundary_id = self.model.token_to_id(EOS)

    @classmethod
    def fit(cls, text: str, config: TokenizerConfig) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

        model = HFTokenizer(models.BPE(unk_token=UNK))
        if config.lowercase:
            model.normalizer = normalizers.Lowercase()
        # Metaspace keeps word starts as "▁" so decoding restores the spaces exactly.
        model.pre_tokenizer = pre_tokenizers.Metaspace()
        model.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=config.bpe_vocab_size, special_tokens=[EOS, UNK],
                                      min_frequency=config.min_freq, show_progress=False)
        model.train_from_iterator(text.splitlines(), trainer=trainer)
        return cls(model.to_str(), config.lowercase)

    @property
    def vocab_size(self) -> int:
        return self.model.get_vocab_size()

    def encode_corpus(self, text: str) -> list[int]:
        ids: list[int] = []
        for encoding in self.model.encode_batch(text.splitlines(), add_special_tokens=False):
            ids.extend(encoding.ids)
            ids.append(self.boundary_id)
        return ids

    def encode(self, text: str) -> list[int]:
        return self.model.encode(text, add_special_tokens=False).ids

    def encode_with_spans(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        encoding = self.model.encode(text, add_special_tokens=False)
        return encoding.ids, [tuple(offset) for offset in encoding.offsets]  # offsets into text as given

    def decode(self, ids: Iterable[int]) -> str:
        lines, current = [], []
        for i in ids:
            if i == self.boundary_id:
                lines.append(current)
                current = []
            else:
                current.append(i)
        lines.append(current)
        return "\n".join(self.model.decode(line, skip_special_tokens=False) for line in lines)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "lowercase": self.lowercase, "model": self.model.to_str()}


def fit_tokenizer(train_text: str, config: TokenizerConfig) -> Tokenizer:
    kinds = {"word": WordTokenizer, "char": CharTokenizer, "bpe": BPETokenizer}
    return kinds[config.kind].fit(train_text, config)


def tokenizer_from_dict(state: dict[str, Any], where: str) -> Tokenizer:
    try:
        kind = state["kind"]
        if kind == "word":
            return WordTokenizer(list(state["itos"]), bool(state["lowercase"]))
        if kind == "char":
            return CharTokenizer(list(state["units"]), state["unit"], bool(state["lowercase"]))
        if kind == "bpe":
            return BPETokenizer(state["model"], bool(state["lowercase"]))
    except Exception as error:  # missing keys, wrong types, or the tokenizers library's own parse errors
        raise UserError(f"{where}: not a valid tokenizer file ({error})") from None
    raise UserError(f"{where}: unknown tokenizer kind {kind!r}")


def tokenizer_to_json(tokenizer: Tokenizer) -> str:
    return json.dumps(tokenizer.to_dict(), ensure_ascii=False)
