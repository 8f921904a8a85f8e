"""The words of the synthetic agreement grammar (synthetic_grammar.py): about 290, lower-case, one token each.

Only two classes carry number: nouns and the agreeing verbs (is/are, was/were, has/have), each a (singular,
plural) pair. Everything else is number-neutral in English: the determiners (no this/these), adjectives, adverbs,
prepositions, "that", -ing participles, and the past-tense verbs of relative clauses. No word belongs to two
classes (a test checks), so a form read in a sentence says which class it is and nothing inside a gap looks like
the main verb.
"""

from __future__ import annotations


def paired(*pairs: str) -> tuple[tuple[str, str], ...]:
    """paired("dog dogs", ...) -> (("dog", "dogs"), ...): (singular, plural)."""
    return tuple(tuple(pair.split()) for pair in pairs)


NOUNS = paired(
    "dog dogs", "cat cats", "bird birds", "horse horses", "fox foxes", "wolf wolves", "mouse mice",
    "teacher teachers", "doctor doctors", "farmer farmers", "pilot pilots", "singer singers", "student students",
    "author authors", "lawyer lawyers", "painter painters", "driver drivers", "baker bakers", "king kings",
    "queen queens", "girl girls", "boy boys", "child children", "man men", "woman women", "baby babies",
    "lady ladies", "friend friends", "neighbor neighbors", "officer officers", "manager managers",
    "player players", "soldier soldiers", "nurse nurses", "box boxes", "table tables", "chair chairs",
    "window windows", "door doors", "key keys", "book books", "letter letters", "picture pictures", "car cars",
    "truck trucks", "house houses", "garden gardens", "tree trees", "flower flowers", "bottle bottles",
    "cup cups", "lamp lamps", "bridge bridges", "river rivers", "road roads", "ship ships", "coat coats",
    "bench benches", "church churches", "city cities", "knife knives", "glass glasses",
)

# The main verb: be and have, the forms that carry agreement in the classic test sets ("the keys to the cabinet
# are"). Lexical verbs come after be as -ing participles, which do not inflect for number.
COPULAS = paired("is are", "was were")
HAVE = paired("has have")
INTRANSITIVE_PARTICIPLES = (
    "sleeping", "running", "waiting", "laughing", "smiling", "working", "swimming", "singing", "talking",
    "falling", "resting", "shouting", "walking", "dancing", "hiding", "listening", "jumping", "crying",
)
TRANSITIVE_PARTICIPLES = (
    "watching", "holding", "keeping", "taking", "bringing", "carrying", "following", "chasing", "helping",
    "calling", "visiting", "pushing", "washing", "fixing", "painting", "finding",
)

# Inside relative clauses: the past tense, the same in both numbers. Transitive ones take a noun phrase ("that
# the king saw", "that chased the cats"); intransitive ones make noun-free filler ("that slept").
PAST_VERBS = (
    "saw", "liked", "met", "helped", "called", "visited", "followed", "watched", "chased", "admired", "noticed",
    "pushed", "washed", "carried", "fixed", "loved", "hated", "painted", "found", "bought", "sold", "thanked",
    "blamed", "praised", "described", "remembered", "forgot",
)
PAST_INTRANSITIVE_VERBS = (
    "slept", "smiled", "laughed", "waited", "arrived", "stayed", "cried", "fell", "ran", "swam", "sang", "danced",
    "shouted", "rested", "walked", "jumped", "talked",
)
ADJECTIVES = (
    "old", "young", "small", "big", "tall", "happy", "sad", "red", "green", "blue", "quiet", "loud", "busy",
    "tired", "strange", "famous", "new", "dark", "bright", "clever", "lazy", "brave", "kind", "angry", "calm",
    "rich", "poor",
)
# Filler in a gap: adverbs that can stand between a subject and its verb.
ADVERBS = (
    "often", "really", "surely", "now", "usually", "still", "also", "never", "always", "probably", "clearly",
    "quietly", "sometimes", "certainly", "apparently", "rarely", "perhaps", "indeed", "again", "here", "there",
    "today", "already", "obviously", "suddenly", "honestly", "finally",
)
PREPOSITIONS = (
    "near", "behind", "beside", "with", "under", "above", "from", "without", "around", "across", "beyond",
    "inside", "outside", "by", "of", "for", "against", "toward",
)
DETERMINERS = ("the", "my", "our", "your", "his", "her", "their")
COMPLEMENTIZER = "that"

AGREEING_VERBS = COPULAS + HAVE
NEUTRAL_WORDS = frozenset(INTRANSITIVE_PARTICIPLES + TRANSITIVE_PARTICIPLES + PAST_VERBS + PAST_INTRANSITIVE_VERBS
                          + ADJECTIVES + ADVERBS + PREPOSITIONS + DETERMINERS + (COMPLEMENTIZER,))


def all_words() -> list[str]:
    """Every form of the lexicon, each once, in a fixed order."""
    numbered = [form for pair in NOUNS + AGREEING_VERBS for form in pair]
    return list(dict.fromkeys(numbered + sorted(NEUTRAL_WORDS)))
