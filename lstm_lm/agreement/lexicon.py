"""The built-in suite's words. Every form below occurs in the training splits of both Penn Treebank and
WikiText-2 (checked when the lexicon was written), so a model trained on either reads the suite without `<unk>`."""

from __future__ import annotations

from dataclasses import dataclass

SINGULAR, PLURAL = "sing", "plur"


@dataclass(frozen=True)
class Inflected:
    """A word (or a verb with its complement) in both numbers: `Inflected("is tall", "are tall")`."""

    singular: str
    plural: str

    def form(self, number: str) -> str:
        return self.singular if number == SINGULAR else self.plural


def inflected(*pairs: str) -> list[Inflected]:
    """inflected("author authors", ...) -> [Inflected("author", "authors"), ...]"""
    return [Inflected(*pair.split()) for pair in pairs]


PEOPLE = inflected("author authors", "pilot pilots", "farmer farmers", "manager managers", "customer customers",
                   "officer officers", "teacher teachers", "executive executives", "doctor doctors",
                   "lawyer lawyers", "student students", "minister ministers", "guard guards")
THINGS = inflected("flight flights", "plane planes", "train trains", "car cars", "book books",
                   "shipment shipments", "report reports", "contract contracts", "house houses")
ORGANIZATIONS = inflected("airline airlines", "company companies", "agency agencies", "bank banks", "firm firms")

INTRANSITIVE_VERBS = inflected("works work", "lives live", "talks talk", "agrees agree", "wins win",
                               "leaves leave", "speaks speak", "writes write", "reads read", "runs run")
TRANSITIVE_VERBS = inflected("likes like", "knows know", "meets meet", "sees see", "helps help", "calls call",
                             "pays pay", "supports support", "needs need")
BE, BE_PAST, HAVE = Inflected("is", "are"), Inflected("was", "were"), Inflected("has", "have")
DETERMINERS = inflected("this these", "that those")

PERSON_ADJECTIVES = ["tall", "happy", "old", "young", "ready", "rich", "busy", "famous", "angry", "tired",
                     "popular"]
THING_ADJECTIVES = ["new", "large", "small", "empty", "late", "full", "cheap", "expensive"]
PARTICIPLES = ["left", "arrived", "won", "resigned", "retired", "agreed", "returned", "spoken"]
PROGRESSIVES = ["delaying", "planning", "reviewing", "selling", "buying", "building", "making"]
PAST_VERBS = ["bought", "sold", "saw", "wanted", "found", "took", "liked"]
REPORTING_VERBS = ["said", "thought", "knew", "believed"]
PREPOSITIONS = ["near", "behind", "with", "next to", "across from", "in front of"]
PLACES = ["city", "office", "room", "building", "hospital"]


def with_complement(verb: Inflected, complement: str) -> Inflected:
    return Inflected(f"{verb.singular} {complement}", f"{verb.plural} {complement}")


# What a person subject does, with each kind of agreeing verb: regular present, is/are, was/were, has/have.
PERSON_PREDICATES = (INTRANSITIVE_VERBS
                     + [with_complement(BE, adjective) for adjective in PERSON_ADJECTIVES]
                     + [with_complement(BE_PAST, adjective) for adjective in PERSON_ADJECTIVES]
                     + [with_complement(HAVE, participle) for participle in PARTICIPLES])
