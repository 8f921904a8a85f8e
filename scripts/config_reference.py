"""Print the Markdown reference of every config key, or write it into the README between its markers.

Run: python scripts/config_reference.py [--update README.md]
"""

import dataclasses
import sys
import typing
from pathlib import Path

from lstm_lm.config import SECTIONS


def type_name(annotation) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(args)
    if origin is list:
        return f"list of {args[0].__name__}"
    if origin is typing.Union:
        return " \\| ".join(type_name(a) for a in args if a is not type(None)) + " \\| null"
    return annotation.__name__


START, END = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"


def reference() -> str:
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            value = field.default_factory() if field.default is dataclasses.MISSING else field.default
            default = "null" if value is None else repr(value).replace("'", "") or '""'
            lines.append(f"| `{section}.{field.name}` | {type_name(hints[field.name])} | {default} | "
                         f"{field.metadata['help']} |")
    return "\n".join(lines) + "\n"


def main(arguments: list[str]) -> None:
    if arguments[:1] == ["--update"]:
        path = Path(arguments[1])
        text = path.read_text(encoding="utf-8")
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        path.write_text(before + START + reference() + END + after, encoding="utf-8")
    else:
        print(reference(), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
