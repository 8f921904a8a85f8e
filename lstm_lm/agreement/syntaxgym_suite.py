"""SyntaxGym test suites (Hu et al. 2020; the JSON format of syntaxgym-core's docs/suite_json.rst): a file, or a
directory of them, read into typed items with their predictions parsed, and checked before anything is scored.

    {"meta": {"name", "metric"}, "region_meta": {"1": name, ...}, "predictions": [{"type": "formula", "formula"}],
     "items": [{"item_number", "conditions": [{"condition_name", "regions": [{"region_number", "content"}]}]}]}

Region contents are kept as published, quirks included: empty regions (a gap, a missing comma), leading spaces
(" the woman" in npz_obj), a trailing one ("kingpin " in fgd-embed3). Keys the format does not define (author,
comment, an evaluated suite's metric_value) are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..reading import read_text
from .syntaxgym_formula import Formula, parse_formula, references


@dataclass(frozen=True)
class GymRegion:
    number: int  # from 1, as region_meta numbers them
    content: str  # as published
    # The characters of the condition's sentence that hold the content (its leading whitespace removed); a blank
    # region has the empty span where it would have stood, after the text before it.
    span: tuple[int, int]


@dataclass(frozen=True)
class GymCondition:
    name: str
    regions: tuple[GymRegion, ...]  # region n is regions[n - 1]
    sentence: str  # the regions joined as syntaxgym-core joins them (see `join_regions`)


@dataclass(frozen=True)
class GymItem:
    number: int  # item_number
    conditions: dict[str, GymCondition]  # in file order
    where: str  # "file: items[k] (item_number n)", for error messages and the items file


@dataclass(frozen=True)
class GymPrediction:
    index: int  # its place in `predictions`, from 0, as syntaxgym-core's prediction_id
    text: str  # the formula as published
    formula: Formula


@dataclass(frozen=True)
class GymSuite:
    name: str  # meta.name
    path: Path
    meta: dict[str, Any]  # as published
    region_names: dict[int, str]  # region_meta, numbered 1 to N
    predictions: tuple[GymPrediction, ...]
    items: tuple[GymItem, ...]

    @property
    def region_numbers(self) -> tuple[int, ...]:
        """What a `*` reference sums over: every region, since each condition has them all."""
        return tuple(self.region_names)


def read_syntaxgym(path: Path) -> list[GymSuite]:
    """The suite in a file, or those in a directory's .json files in name order, each with a name of its own."""
    if path.is_dir():
        files = sorted(child for child in path.iterdir() if child.is_file() and child.suffix == ".json")
        if not files:
            raise UserError(f"{path}: no SyntaxGym suites in it (looked for *.json)")
    else:
        files = [path]
    suites = [read_suite(file) for file in files]
    check_distinct_names(suites)
    return suites


def check_distinct_names(suites: list[GymSuite]) -> None:
    """Reports tell suites apart by name: two files with the same meta.name are refused."""
    seen: dict[str, Path] = {}
    for suite in suites:
        if suite.name in seen:
            raise UserError(f"{suite.path}: meta.name {suite.name!r} is also the name of the suite in "
                            f"{seen[suite.name]}; reports tell suites apart by name")
        seen[suite.name] = suite.path


def read_suite(path: Path) -> GymSuite:
    document = load_json(path)
    meta = mapping(document, "meta", str(path))
    name = text_field(meta, "name", f"{path}: meta")
    metric = text_field(meta, "metric", f"{path}: meta")
    if metric != "sum":
        # syntaxgym-core also knows mean, median, range, max and min; the suites of Hu et al. (2020) all sum.
        raise UserError(f"{path}: meta.metric is {metric!r}; only 'sum' (a region's surprisal is the sum over its "
                        f"tokens) is supported")
    region_names = read_region_meta(mapping(document, "region_meta", str(path)), path)
    predictions = read_predictions(document, meta, region_names, path)
    raw_items = listing(document, "items", str(path))
    if not raw_items:
        raise UserError(f"{path}: 'items' is empty")
    items, seen = [], {}
    for index, raw in enumerate(raw_items):
        item = read_item(raw, index, region_names, path)
        if item.number in seen:
            raise UserError(f"{item.where}: item_number {item.number} is also that of items[{seen[item.number]}]")
        seen[item.number] = index
        check_references(item, predictions, path)
        items.append(item)
    return GymSuite(name, path, meta, region_names, predictions, tuple(items))


def load_json(path: Path) -> dict[str, Any]:
    text = read_text(path, "utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
    if not isinstance(document, dict):
        raise UserError(f"{path}: expected a SyntaxGym suite, a JSON object with meta, region_meta, predictions "
                        f"and items")
    return document


def read_region_meta(region_meta: dict[str, Any], path: Path) -> dict[int, str]:
    """Region numbers 1 to N: syntaxgym-core's docs ask for that range, and its aligner counts regions by place."""
    numbers = sorted(int(key) if key.isdigit() else -1 for key in region_meta)
    if not numbers or numbers != list(range(1, len(numbers) + 1)):
        raise UserError(f"{path}: region_meta must number its regions 1 to N, found {', '.join(region_meta) or 'none'}")
    return {int(key): str(region_name) for key, region_name in sorted(region_meta.items(), key=lambda kv: int(kv[0]))}


def read_predictions(document: dict[str, Any], meta: dict[str, Any], region_names: dict[int, str],
                     path: Path) -> tuple[GymPrediction, ...]:
    raw_predictions = listing(document, "predictions", str(path))
    if not raw_predictions:
        # The suites' first release (syntactic-generalization before commit 234542b) kept them there.
        hint = "; move meta.string_predictions into it as {\"type\": \"formula\", \"formula\": ...}" \
            if "string_predictions" in meta else ""
        raise UserError(f"{path}: 'predictions' is empty, so there is nothing to test{hint}")
    predictions = []
    for index, raw in enumerate(raw_predictions):
        where = f"{path}: predictions[{index}]"
        if not isinstance(raw, dict):
            raise UserError(f"{where}: expected an object with type and formula")
        if raw.get("type") != "formula":
            raise UserError(f"{where}: type is {raw.get('type')!r}; the only type of prediction is 'formula'")
        text = text_field(raw, "formula", where)
        formula = parse_formula(text, where)
        for reference in references(formula):
            if reference.number is not None and reference.number not in region_names:
                raise UserError(f"{where}: refers to region {reference.number}, but region_meta declares regions 1 "
                                f"to {len(region_names)}")
        predictions.append(GymPrediction(index, text, formula))
    return tuple(predictions)


def read_item(raw: Any, index: int, region_names: dict[int, str], path: Path) -> GymItem:
    where = f"{path}: items[{index}]"
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected an object with item_number and conditions")
    number = whole_number(raw.get("item_number"), "item_number", where)
    where = f"{where} (item_number {number})"
    raw_conditions = listing(raw, "conditions", where)
    if not raw_conditions:
        raise UserError(f"{where}: 'conditions' is empty")
    conditions: dict[str, GymCondition] = {}
    for raw_condition in raw_conditions:
        if not isinstance(raw_condition, dict):
            raise UserError(f"{where}: expected each condition to be an object with condition_name and regions")
        name = text_field(raw_condition, "condition_name", where)
        if name in conditions:
            raise UserError(f"{where}: condition {name!r} appears twice")
        conditions[name] = read_condition(raw_condition, name, region_names, f"{where}, condition {name!r}")
    return GymItem(number, conditions, where)


def read_condition(raw: dict[str, Any], name: str, region_names: dict[int, str], where: str) -> GymCondition:
    numbers, contents = [], []
    for raw_region in listing(raw, "regions", where):
        if not isinstance(raw_region, dict):
            raise UserError(f"{where}: expected each region to be an object with region_number and content")
        numbers.append(whole_number(raw_region.get("region_number"), "region_number", where))
        content = raw_region.get("content")
        if not isinstance(content, str):
            raise UserError(f"{where}, region {numbers[-1]}: 'content' must be a string (it may be empty)")
        contents.append(content)
    if numbers != list(region_names):
        raise UserError(f"{where}: regions numbered {numbers}; region_meta declares {list(region_names)}, in order")
    sentence, spans = join_regions(contents)
    if not sentence.strip():
        raise UserError(f"{where}: every region is empty, so there is no sentence")
    regions = tuple(GymRegion(number, content, span)
                    for number, content, span in zip(numbers, contents, spans, strict=True))
    return GymCondition(name, regions, sentence)


def join_regions(contents: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The sentence and each region's span in it, as syntaxgym-core's Suite.iter_sentences joins them: leading
    whitespace removed, blank regions left out, one space between the rest, trailing whitespace kept. Punctuation
    regions are joined the same way, so a sentence reads "... studied the book ." or "... shot , the woman".
    (Its iter_region_edges, which its Hugging Face aligner uses, counts a joining space before the first non-blank
    region when blank ones precede it, so later edges come a character late; these spans are measured on the
    sentence itself. No published suite starts with a blank region.)"""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    position = 0
    for content in contents:
        text = content.lstrip()
        if not text:
            spans.append((position, position))
            continue
        if parts:
            position += 1  # the joining space
        spans.append((position, position + len(text)))
        position += len(text)
        parts.append(text)
    return " ".join(parts), spans


def check_references(item: GymItem, predictions: tuple[GymPrediction, ...], path: Path) -> None:
    for prediction in predictions:
        for reference in references(prediction.formula):
            if reference.condition not in item.conditions:
                raise UserError(f"{item.where}: has no condition {reference.condition!r}, which predictions"
                                f"[{prediction.index}] refers to (it has {', '.join(item.conditions)})")


def mapping(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise UserError(f"{where}: {missing_or_kind(parent, key, 'an object')}")
    return value


def listing(parent: dict[str, Any], key: str, where: str) -> list[Any]:
    value = parent.get(key)
    if not isinstance(value, list):
        raise UserError(f"{where}: {missing_or_kind(parent, key, 'a list')}")
    return value


def text_field(parent: dict[str, Any], key: str, where: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: {missing_or_kind(parent, key, 'a non-empty string')}")
    return value


def whole_number(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{where}: '{key}' must be a whole number, not {value!r}")
    return value


def missing_or_kind(parent: dict[str, Any], key: str, kind: str) -> str:
    return f"missing '{key}'" if key not in parent else f"'{key}' must be {kind}, not {parent[key]!r}"
