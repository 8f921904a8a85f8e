"""SyntaxGym prediction formulas, such as `((6;%match%) < (6;%mismatch%)) & ((7;%match%) < (7;%mismatch%))`: parsed
into a small tree, evaluated on region surprisals.

The grammar is syntaxgym-core's (`syntaxgym/prediction.py`, a pyparsing `infixNotation`), tightest first:

    operand    := region | number | OPEN formula CLOSE
    region     := OPEN (digits | "*") ";%" name "%" CLOSE      (6;%match_sing%); * is the whole sentence
    sum        := operand (("+" | "-") operand)*               left to right
    comparison := sum (("<" | ">" | "=") sum)?                 "=": equal within EQUALITY_ATOL, EQUALITY_RTOL
    formula    := comparison (("&" | "|") comparison)*         one level, left to right: a | b & c is (a | b) & c

OPEN CLOSE is `( )` or `[ ]`, each closed by its own kind. The suites published with Hu et al. (2020) group with
`[ ]`, which syntaxgym-core's first parser (regular expressions, then Python's eval with `[ ]` turned into `( )`)
took and its pyparsing one (commit d3efdd1, 2020-05) does not. A number is pyparsing's (`2`, `0.5`, `.5`, `1e-3`),
signed only where an operand starts and with the sign against its digits (`(1;%a%) - -2`). Whitespace may stand
between any two tokens, not inside `;%`. A condition name is letters, digits and `_ -` (pyparsing's) or `. :` (the
first parser's).

Two things pyparsing lets through are refused here: a chained comparison (`a < b < c`, of which syntaxgym-core
silently keeps `a < b`), and operands of the wrong kind (`&` between numbers, `+` on a comparison, a formula
that is a number rather than true or false).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from ..errors import UserError

# syntaxgym-core prediction.py: `=` is numpy.isclose(left, right, rtol=EQUALITY_RTOL, atol=EQUALITY_ATOL), that is
# |left - right| <= atol + rtol * |right|: scaled by the right operand, so not symmetric.
EQUALITY_RTOL = 1e-5
EQUALITY_ATOL = 1e-3


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Region:
    number: int | None  # None for `*`: every region of the condition
    condition: str


@dataclass(frozen=True)
class Arithmetic:
    operator: str  # + or -
    left: Formula
    right: Formula


@dataclass(frozen=True)
class Comparison:
    operator: str  # <, > or =
    left: Formula
    right: Formula


@dataclass(frozen=True)
class Logical:
    operator: str  # & or |
    left: Formula
    right: Formula


Formula = Number | Region | Arithmetic | Comparison | Logical

TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<condition>;%\s*(?P<name>[\w.:-]*)\s*%)
  | (?P<open>[(\[])
  | (?P<close>[)\]])
  | (?P<star>\*)
  | (?P<operator>[-+<>=&|])
""", re.VERBOSE)
CLOSING = {"(": ")", "[": "]"}


@dataclass(frozen=True)
class Token:
    kind: str  # number, condition, open, close, star, operator, end
    text: str  # for a condition, its name
    start: int
    end: int


def tokenize(text: str, where: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None:
            problem = ("a condition reference is ;%name% with a name of letters, digits and _ - . :"
                       if text[position] == ";" else f"unexpected character {text[position]!r}")
            raise formula_error(where, text, position, problem)
        kind = match.lastgroup  # the outer group: "condition", never its inner "name"
        if kind == "condition":
            if not match.group("name"):
                raise formula_error(where, text, position, "a condition reference names no condition")
            tokens.append(Token(kind, match.group("name"), match.start(), match.end()))
        elif kind != "space":
            tokens.append(Token(kind, match.group(), match.start(), match.end()))
        position = match.end()
    return tokens + [Token("end", "", len(text), len(text))]


def parse_formula(text: str, where: str) -> Formula:
    """The formula's tree. `where` names it in errors ("suite.json: predictions[0]"); a formula that cannot be read
    is a UserError giving the column where reading stopped."""
    if not text.strip():
        raise formula_error(where, text, 0, "the formula is empty")
    parser = Parser(text, where)
    formula, start = parser.formula()
    if parser.peek().kind != "end":
        raise parser.error(parser.peek().start, f"unexpected {parser.describe(parser.peek())}")
    if not is_boolean(formula):
        raise parser.error(start, "the formula is a number; a prediction must compare (< > =) to be true or false")
    return formula


class Parser:
    """Recursive descent over the tokens, one method per grammar rule. Each rule returns its tree and the position
    where it started, for errors about operands of the wrong kind."""

    def __init__(self, text: str, where: str):
        self.text, self.where = text, where
        self.tokens = tokenize(text, where)
        self.index = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def at_operator(self, operators: str) -> bool:
        return self.peek().kind == "operator" and self.peek().text in operators

    def take(self) -> Token:
        token = self.peek()
        self.index += 1
        return token

    def describe(self, token: Token) -> str:
        return "the end of the formula" if token.kind == "end" else repr(self.text[token.start:token.end])

    def error(self, position: int, problem: str) -> UserError:
        return formula_error(self.where, self.text, position, problem)

    def formula(self) -> tuple[Formula, int]:
        left, start = self.comparison()
        while self.at_operator("&|"):
            operator = self.take()
            right, right_start = self.comparison()
            self.need_boolean(left, start, operator)
            self.need_boolean(right, right_start, operator)
            left = Logical(operator.text, left, right)
        return left, start

    def comparison(self) -> tuple[Formula, int]:
        left, start = self.sum()
        if self.at_operator("<>="):
            operator = self.take()
            right, right_start = self.sum()
            self.need_number(left, start, operator)
            self.need_number(right, right_start, operator)
            left = Comparison(operator.text, left, right)
            if self.at_operator("<>="):
                raise self.error(self.peek().start, "comparisons do not chain (a < b < c); join them with & or |")
        return left, start

    def sum(self) -> tuple[Formula, int]:
        left, start = self.operand()
        while self.at_operator("+-"):
            operator = self.take()
            right, right_start = self.operand()
            self.need_number(left, start, operator)
            self.need_number(right, right_start, operator)
            left = Arithmetic(operator.text, left, right)
        return left, start

    def operand(self) -> tuple[Formula, int]:
        token, following = self.peek(), self.peek(1)
        if token.kind == "number":
            self.take()
            return Number(float(token.text)), token.start
        if self.at_operator("+-") and following.kind == "number" and following.start == token.end:
            self.index += 2
            return Number(float(token.text + following.text)), token.start
        if token.kind == "open":
            if following.kind in ("number", "star") and self.peek(2).kind == "condition":
                return self.region(), token.start
            self.take()
            inner, _ = self.formula()
            self.close(token)
            return inner, token.start
        raise self.error(token.start, f"expected a region, a number or an opening bracket, found "
                                      f"{self.describe(token)}")

    def region(self) -> Region:
        opening, number, condition = self.take(), self.take(), self.take()
        if number.kind == "number" and not number.text.isdigit():
            raise self.error(number.start, f"a region number is a whole number or *, not {number.text}")
        self.close(opening)
        return Region(None if number.kind == "star" else int(number.text), condition.text)

    def close(self, opening: Token) -> None:
        token = self.take()
        if token.kind != "close" or token.text != CLOSING[opening.text]:
            raise self.error(token.start, f"expected {CLOSING[opening.text]!r} to close the {opening.text!r} at "
                                          f"column {opening.start + 1}, found {self.describe(token)}")

    def need_number(self, operand: Formula, start: int, operator: Token) -> None:
        if is_boolean(operand):
            raise self.error(start, f"{operator.text} (column {operator.start + 1}) takes numbers, and this "
                                    f"operand is a comparison; group arithmetic inside the comparison")

    def need_boolean(self, operand: Formula, start: int, operator: Token) -> None:
        if not is_boolean(operand):
            raise self.error(start, f"{operator.text} (column {operator.start + 1}) joins comparisons, and this "
                                    f"operand is a number")


def is_boolean(formula: Formula) -> bool:
    return isinstance(formula, (Comparison, Logical))


def formula_error(where: str, text: str, position: int, problem: str) -> UserError:
    return UserError(f"{where}: {problem} (column {position + 1} of the formula {text!r})")


def evaluate(formula: Formula, surprisal: Callable[[int, str], float], regions: Sequence[int]) -> bool:
    """Whether the prediction holds, given `surprisal(region_number, condition_name)`; `regions` are the numbers that
    `*` sums over (all of a condition's regions)."""
    return bool(value(formula, surprisal, regions))


def value(formula: Formula, surprisal: Callable[[int, str], float], regions: Sequence[int]) -> float | bool:
    match formula:
        case Number(number):
            return number
        case Region(None, condition):
            return sum(surprisal(number, condition) for number in regions)
        case Region(number, condition):
            return surprisal(number, condition)
        case Arithmetic(operator, left, right):
            a, b = value(left, surprisal, regions), value(right, surprisal, regions)
            return a + b if operator == "+" else a - b
        case Comparison(operator, left, right):
            a, b = value(left, surprisal, regions), value(right, surprisal, regions)
            if operator == "<":
                return a < b
            if operator == ">":
                return a > b
            # a == b first: numpy.isclose counts two equal infinities as close, where inf - inf is nan
            return a == b or abs(a - b) <= EQUALITY_ATOL + EQUALITY_RTOL * abs(b)
        case Logical(operator, left, right):
            a, b = value(left, surprisal, regions), value(right, surprisal, regions)
            return (a and b) if operator == "&" else (a or b)
    raise TypeError(f"not a formula: {formula!r}")


def references(formula: Formula) -> set[Region]:
    """The region references the formula makes, `*` ones included as they are (number None)."""
    if isinstance(formula, Region):
        return {formula}
    if isinstance(formula, (Arithmetic, Comparison, Logical)):
        return references(formula.left) | references(formula.right)
    return set()


def needed_regions(formula: Formula, regions: Iterable[int]) -> set[tuple[int, str]]:
    """(region_number, condition_name) for every region whose surprisal the formula reads: what must be scored.
    A `*` reference needs all of `regions` in its condition."""
    numbers = tuple(regions)
    return {(number, reference.condition) for reference in references(formula)
            for number in ((reference.number,) if reference.number is not None else numbers)}
