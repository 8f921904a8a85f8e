"""Pickles written opcode by opcode (protocol 2), for what today's torch and pickle module no longer write: the
forms of older torch releases, and hostile pickles. Each node below stands for the opcodes its docstring shows;
a node met again is fetched from the memo (LONG_BINGET), as pickle does for an object referred to twice."""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Global:
    """GLOBAL 'module name'"""
    module: str
    name: str


@dataclass(eq=False)
class Reduce:
    """callable args REDUCE, then state BUILD if there is a state"""
    callable: Any
    args: tuple
    state: Any = None


@dataclass(eq=False)
class New:
    """cls args NEWOBJ, then state BUILD if there is a state"""
    cls: Any
    state: Any = None
    args: tuple = ()


@dataclass(eq=False)
class Build:
    """obj state BUILD: a state set on any object, the way a hostile pickle would try it"""
    obj: Any
    state: Any


@dataclass(eq=False)
class PersistentId:
    """value BINPERSID"""
    value: tuple


@dataclass(eq=False)
class OrderedDict:
    """collections.OrderedDict () REDUCE, then its items SETITEMS: nn.Module's dicts as torch pickles them"""
    items: dict = field(default_factory=dict)


ORDERED_DICT = Global("collections", "OrderedDict")


def dumps(obj: Any) -> bytes:
    writer = Writer()
    writer.save(obj)
    return pickle.PROTO + b"\x02" + bytes(writer.out) + pickle.STOP


class Writer:
    def __init__(self):
        self.out = bytearray()
        self.memo: dict[int, int] = {}
        self.kept: list[Any] = []  # keeps memoized nodes alive, so that their ids stay theirs

    def save(self, obj: Any) -> None:
        if id(obj) in self.memo:
            self.out += pickle.LONG_BINGET + struct.pack("<I", self.memo[id(obj)])
            return
        if obj is None or isinstance(obj, (bool, int, float, str)):
            self.scalar(obj)
            return
        if isinstance(obj, tuple):
            self.sequence(obj, pickle.TUPLE)
            return
        if isinstance(obj, list):
            self.out += pickle.EMPTY_LIST
            self.remember(obj)
            self.sequence(obj, pickle.APPENDS)
        elif isinstance(obj, dict):
            self.out += pickle.EMPTY_DICT
            self.remember(obj)
            self.items(obj)
        elif isinstance(obj, Global):
            self.out += pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode()
            self.remember(obj)
        elif isinstance(obj, Reduce):
            self.save(obj.callable)
            self.save(obj.args)
            self.out += pickle.REDUCE
            self.remember(obj)
            if obj.state is not None:
                self.save(obj.state)
                self.out += pickle.BUILD
        elif isinstance(obj, New):
            self.save(obj.cls)
            self.save(obj.args)
            self.out += pickle.NEWOBJ
            self.remember(obj)
            if obj.state is not None:
                self.save(obj.state)
                self.out += pickle.BUILD
        elif isinstance(obj, Build):
            self.save(obj.obj)
            self.save(obj.state)
            self.out += pickle.BUILD
        elif isinstance(obj, PersistentId):
            self.save(obj.value)
            self.out += pickle.BINPERSID
        elif isinstance(obj, OrderedDict):
            self.save(ORDERED_DICT)
            self.out += pickle.EMPTY_TUPLE + pickle.REDUCE
            self.remember(obj)
            self.items(obj.items)
        else:
            raise TypeError(f"no opcodes for {type(obj).__name__}")

    def scalar(self, value: Any) -> None:
        if value is None:
            self.out += pickle.NONE
        elif isinstance(value, bool):
            self.out += pickle.NEWTRUE if value else pickle.NEWFALSE
        elif isinstance(value, int) and -2 ** 31 <= value < 2 ** 31:
            self.out += pickle.BININT + struct.pack("<i", value)
        elif isinstance(value, int):
            encoded = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self.out += pickle.LONG1 + bytes([len(encoded)]) + encoded
        elif isinstance(value, float):
            self.out += pickle.BINFLOAT + struct.pack(">d", value)
        else:
            encoded = value.encode()
            self.out += pickle.BINUNICODE + struct.pack("<I", len(encoded)) + encoded

    def sequence(self, values: tuple | list, closing: bytes) -> None:
        self.out += pickle.MARK
        for value in values:
            self.save(value)
        self.out += closing

    def items(self, mapping: dict) -> None:
        self.out += pickle.MARK
        for key, value in mapping.items():
            self.save(key)
            self.save(value)
        self.out += pickle.SETITEMS

    def remember(self, obj: Any) -> None:
        self.memo[id(obj)] = index = len(self.memo)
        self.kept.append(obj)
        self.out += pickle.LONG_BINPUT + struct.pack("<I", index)
