"""Print the Markdown reference of every config key (the README's table comes from here).

Run: python scripts/config_reference.py
"""

import dataclasses
import typing

from lstm_lm.config import SECTIONS


def type_name(annotation) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(args)
    if origin is typing.Union:
        return " \\| ".join(type_name(a) for a in args if a is not type(None)) + " \\| null"
    return annotation.__name__


def main() -> None:
    print("| key | type | default | meaning |")
    print("| --- | --- | --- | --- |")
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            default = "null" if field.default is None else repr(field.default).replace("'", "") or '""'
            print(f"| `{section}.{field.name}` | {type_name(hints[field.name])} | {default} | "
                  f"{field.metadata['help']} |")


if __name__ == "__main__":
    main()
