"""The built-in suite: templates filled from the lexicon, many items per construction, in both numbers.

A template is a line of words and slots. `{person.x}` is a person noun in number x; x, y and z are the item's
number variables, each singular or plural, cycled through every combination. `*` marks the controller (the word
the target agrees with), `!` the target: the bad sentence puts the target in the other number. Nouns between the
controller and the target whose number differs from the controller's are the item's attractors.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_write_text
from . import lexicon
from .items import Item, Suite

ITEMS_PER_CONSTRUCTION = 200
NUMBERED = {  # slot category -> its words, each in both numbers
    "person": lexicon.PEOPLE, "thing": lexicon.THINGS, "organization": lexicon.ORGANIZATIONS,
    "verb": lexicon.INTRANSITIVE_VERBS, "tverb": lexicon.TRANSITIVE_VERBS, "predicate": lexicon.PERSON_PREDICATES,
    "be_past": [lexicon.BE_PAST], "determiner": lexicon.DETERMINERS,
}
PLAIN = {  # slot category -> words that do not inflect for number
    "adjective": lexicon.PERSON_ADJECTIVES, "thing_adjective": lexicon.THING_ADJECTIVES,
    "progressive": lexicon.PROGRESSIVES, "past_verb": lexicon.PAST_VERBS, "reporting_verb": lexicon.REPORTING_VERBS,
    "preposition": lexicon.PREPOSITIONS, "place": lexicon.PLACES,
}
NOUNS = {"person", "thing", "organization"}  # the categories that count as attractors
SLOT = re.compile(r"([*!]?)\{(\w+)(?:\.([xyz]))?\}")


@dataclass(frozen=True)
class Construction:
    name: str
    templates: tuple[str, ...]


CONSTRUCTIONS = (
    Construction("simple", ("the *{person.x} !{predicate.x}",)),
    Construction("across_pp", ("the *{person.x} {preposition} the {person.y} !{predicate.x}",
                               "the *{person.x} {preposition} the {thing.y} !{predicate.x}",
                               "the *{person.x} {preposition} the {person.y} {preposition} the {thing.z} "
                               "!{predicate.x}")),
    Construction("across_subject_rc", ("the *{person.x} that {tverb.x} the {person.y} !{predicate.x}",)),
    Construction("across_object_rc", ("the *{person.x} that the {person.y} {tverb.y} !{predicate.x}",)),
    Construction("across_object_rc_no_that", ("the *{person.x} the {person.y} {tverb.y} !{predicate.x}",)),
    Construction("inside_object_rc", ("the {person.y} that the *{person.x} !{tverb.x} {predicate.y}",
                                      "the {person.y} the *{person.x} !{tverb.x} {predicate.y}")),
    Construction("sentential_complement", ("the {person.y} {reporting_verb} the *{person.x} !{predicate.x}",
                                           "the {person.y} {reporting_verb} that the *{person.x} !{predicate.x}")),
    Construction("short_vp_coordination", ("the *{person.x} {verb.x} and !{verb.x}",)),
    Construction("long_vp_coordination", ("the *{person.x} {tverb.x} the {person.y} in the {place} every day "
                                          "and !{verb.x}",)),
    Construction("determiner_noun", ("the {person.y} {past_verb} *{determiner.x} !{thing.x}",
                                     "the {person.y} {past_verb} *{determiner.x} {thing_adjective} !{thing.x}")),
    # The seed example's shape: "the flights the airline was cancelling were full".
    Construction("past_progressive_rc", (
        "the *{thing.x} the {organization.y} {be_past.y} {progressive} !{be_past.x} {thing_adjective}",
        "the *{thing.x} that the {organization.y} {be_past.y} {progressive} !{be_past.x} {thing_adjective}")),
)


def other_number(number: str) -> str:
    return lexicon.PLURAL if number == lexicon.SINGULAR else lexicon.SINGULAR


def number_variables(template: str) -> list[str]:
    return sorted({variable for _, _, variable in SLOT.findall(template) if variable})


def fill(template: str, numbers: dict[str, str], rng: random.Random) -> tuple[list[str], list[str], dict[str, int]]:
    """One filling of a template: (good words, bad words, {"distance", "attractors"}). A category used twice in
    a template takes two different words ("the author near the guards", never "the author near the author")."""
    good: list[str] = []
    bad: list[str] = []
    used: set[object] = set()
    controller = target = None
    nouns: list[tuple[int, str]] = []  # (position, number) of every noun slot
    for token in template.split():
        slot = SLOT.fullmatch(token)
        if slot is None:
            good.append(token)
            bad.append(token)
            continue
        mark, category, variable = slot.groups()
        choices = NUMBERED.get(category) or PLAIN[category]
        choice = rng.choice([c for c in choices if c not in used] or choices)
        used.add(choice)
        position = len(good)
        if variable is None:
            good_text = bad_text = choice
        else:
            good_text = choice.form(numbers[variable])
            bad_text = choice.form(other_number(numbers[variable])) if mark == "!" else good_text
        if category in NOUNS:
            nouns.append((position, numbers[variable]))
        if mark == "*":
            controller = (position, numbers[variable])
        elif mark == "!":
            target = position
        good.extend(good_text.split())
        bad.extend(bad_text.split())
    controller_position, controller_number = controller
    attractors = sum(1 for position, number in nouns
                     if controller_position < position < target and number != controller_number)
    return good, bad, {"distance": target - controller_position, "attractors": attractors}


def as_sentence(words: list[str]) -> str:
    """Normal capitalization and a final full stop, as untokenized text is written (format 1)."""
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def construction_items(construction: Construction, count: int, first_index: int) -> list[Item]:
    """`count` distinct items, cycling through every template and every combination of its numbers."""
    rng = random.Random(construction.name)  # a string seed: the same suite on every machine and run
    plans = [(template, dict(zip(variables, combination)))
             for template in construction.templates
             for variables in [number_variables(template)]
             for combination in itertools.product((lexicon.SINGULAR, lexicon.PLURAL), repeat=len(variables))]
    items: list[Item] = []
    seen: set[str] = set()
    while len(items) < count:
        template, numbers = plans[len(items) % len(plans)]
        good, bad, measures = fill(template, numbers, rng)
        sentence = as_sentence(good)
        if sentence in seen:
            continue
        seen.add(sentence)
        subcondition = "_".join(numbers[variable] for variable in sorted(numbers))
        items.append(Item(sentence, as_sentence(bad), f"built-in:{first_index + len(items) + 1}",
                          {"condition": construction.name, "subcondition": subcondition, **measures}))
    return items


def builtin_suite(items_per_construction: int = ITEMS_PER_CONSTRUCTION) -> Suite:
    items: list[Item] = []
    for construction in CONSTRUCTIONS:
        items.extend(construction_items(construction, items_per_construction, len(items)))
    return Suite("built-in", "builtin", items)


def write_suite(path: Path, suite: Suite) -> None:
    """The suite as minimal pairs in JSON Lines (format 1); the grouping fields ride along and are read back."""
    lines = [json.dumps({"sentence_good": item.good, "sentence_bad": item.bad, "UID": item.groups["condition"],
                         "pairID": str(index), **{key: value for key, value in item.groups.items()
                                                  if key != "condition"}})
             for index, item in enumerate(suite.items)]
    atomic_write_text(path, "\n".join(lines) + "\n")
