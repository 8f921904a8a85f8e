"""An unpickler for checkpoints that pickle a whole RNNModel, which reads the pickle as data and runs none of it.

A pickle is a program: GLOBAL names any importable object and REDUCE calls it with arguments of the file's choosing,
so `torch.load(weights_only=False)` of a stranger's file runs whatever the file names. Here `find_class` answers
only the names of the allow-list below, and never with the object named: a module class becomes a class whose
instances only record the state BUILD hands them, a tensor-rebuilding function one that records where the tensor's
numbers lie, a storage class the dtype it stands for. Every other name is refused before anything is called. The
opcodes themselves only make numbers, strings, tuples, lists, dicts and sets and call what find_class answered, so
the only code a file can reach is this module's and the constructors of dict, set and tuple.

The stand-ins cannot be changed by the file: the sealed ones refuse BUILD, BUILD on a class fails (it calls the
class's __setstate__ without an instance), and the module classes are made afresh for each file.

The numbers themselves are not in the pickle: its persistent ids name storages, whose bytes lie elsewhere in the
file; lstm_lm/foreign/torch_file.py reads them into the StorageRecords made here.
"""

from __future__ import annotations

import pickle
from typing import Any, BinaryIO

import torch


class PickleRefused(Exception):
    """The pickle asks for something no checkpoint of an RNNModel holds, or holds it in a form not read here.
    The message is one line, to follow the file's name."""


# ---- the stand-ins -------------------------------------------------------------------------------------------------

class Inert:
    """An object of the pickle as data: the class it named (`class_path`) and the state BUILD gave it. For an
    nn.Module the state is its __dict__: `_parameters`, `_modules` and the constructor's settings."""

    class_path = ""
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class Sealed:
    """A stand-in that BUILD cannot change: with __slots__ there is no __dict__ to fill, and this refuses the rest."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise PickleRefused(f"its pickle sets the state of {type(self).__name__}, which no checkpoint does")


class AttributedDict(dict):
    """collections.OrderedDict as a plain dict (which keeps the order too), with the attributes a pickle may set on
    it: a state_dict carries its `_metadata` so."""

    def __setstate__(self, state: Any) -> None:
        self.attributes = state


class StorageKind(Sealed):
    """What `torch.FloatStorage` and its kin stand for in a persistent id: the dtype of the storage's elements."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class StorageRecord(Sealed):
    """A storage the pickle names: `numel` elements of `dtype`, whose bytes the file holds apart from the pickle
    (`data`, once read: a flat CPU tensor). The legacy format also names views of a storage, `numel` elements from
    element `offset` of a `root`."""

    __slots__ = ("data", "dtype", "key", "numel", "offset", "root")

    def __init__(self, key: str, dtype: torch.dtype, numel: int, root: StorageRecord | None = None, offset: int = 0):
        self.key, self.dtype, self.numel, self.root, self.offset = key, dtype, numel, root, offset
        self.data: torch.Tensor | None = None

    def elements(self) -> torch.Tensor:
        """(numel,): the storage's elements, a view of the bytes read."""
        if self.root is not None:
            return self.root.elements()[self.offset: self.offset + self.numel]
        if self.data is None:
            raise PickleRefused(f"storage {shown(self.key)} has no data in the file")
        return self.data


class TensorRecord(Sealed):
    """A tensor: `size` elements laid out with `stride` from element `offset` of `storage`. The same record stands
    wherever the pickle refers to the same tensor again (the memo), so a tied weight is one record."""

    __slots__ = ("built", "offset", "size", "storage", "stride")

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any):
        if not isinstance(storage, StorageRecord):
            raise PickleRefused("a tensor is rebuilt from something that is not a storage")
        self.storage, self.offset = storage, whole_number(offset, "storage offset")
        self.size = tuple(whole_number(n, "size") for n in sequence(size, "size"))
        self.stride = tuple(whole_number(n, "stride") for n in sequence(stride, "stride"))
        if len(self.size) != len(self.stride):
            raise PickleRefused(f"a tensor of size {self.size} has strides {self.stride}")
        self.built: torch.Tensor | None = None

    def __setstate__(self, state: Any) -> None:
        # torch 0.3 pickled a Parameter as Parameter(tensor), then BUILD with the Variable's state (requires_grad,
        # volatile, backward_hooks), which says nothing about the numbers.
        if not (isinstance(state, tuple) and len(state) == 3):
            super().__setstate__(state)

    def tensor(self) -> torch.Tensor:
        """The tensor, on the CPU, in memory of its own (no view of the file's bytes); the same object every time."""
        if self.built is None:
            elements = self.storage.elements()
            last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
            if 0 not in self.size and last >= len(elements):
                raise PickleRefused(f"a tensor of size {self.size} reads element {last:,} of storage "
                                    f"{shown(self.storage.key)}, which has {len(elements):,}")
            try:
                view = elements.as_strided(self.size, self.stride, self.offset)
            except RuntimeError as error:  # sizes whose product overflows, say
                raise PickleRefused(f"a tensor of size {self.size} cannot be laid out: {error}") from None
            self.built = view.clone(memory_format=torch.contiguous_format)
        return self.built


class Call(Sealed):
    """A function of this module handed out for a name of the allow-list; sealed, so the pickle cannot set its
    defaults or attributes."""

    __slots__ = ("function",)

    def __init__(self, function):
        self.function = function

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)


def whole_number(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise PickleRefused(f"a tensor's {what} is {shown(value)}, not a whole number")
    return value


def sequence(value: Any, what: str) -> tuple:
    if not isinstance(value, (tuple, list)):
        raise PickleRefused(f"a tensor's {what} is {type(value).__name__}, not a tuple")
    return tuple(value)


# ---- the rebuilding functions torch's pickles call, recording instead ----------------------------------------------

def rebuild_tensor(storage, offset, size, stride) -> TensorRecord:
    """torch._utils._rebuild_tensor: tensors of torch 0.3 and earlier."""
    return TensorRecord(storage, offset, size, stride)


def rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks, metadata=None) -> TensorRecord:
    """torch._utils._rebuild_tensor_v2, from torch 0.4 on. `metadata` carries the conjugate and negative bits of
    complex views, which a float weight never has."""
    if metadata:
        raise PickleRefused(f"a tensor carries the view flags {shown(metadata)}, which are not read here")
    return TensorRecord(storage, offset, size, stride)


def as_parameter(data, *ignored) -> TensorRecord:
    """A Parameter is its tensor; requires_grad, hooks and Python attributes say nothing about the numbers. The
    forms: torch.nn.parameter.Parameter(tensor) then BUILD (torch 0.3), Parameter(tensor, requires_grad) (0.4),
    _rebuild_parameter(tensor, requires_grad, hooks) (1.0 on), and _rebuild_parameter_with_state with the
    Parameter's attributes last."""
    if not isinstance(data, TensorRecord):
        raise PickleRefused("a Parameter is made of something that is not a tensor")
    return data


def old_thnn_backend() -> Inert:
    """torch.nn.backends.thnn._get_thnn_function_backend: every module saved whole by torch 1.1 and earlier
    pickled its `_backend` attribute as a call of it."""
    backend = Inert()
    backend.class_path = "torch.nn.backends.thnn.THNNFunctionBackend"
    return backend


# ---- the allow-list ------------------------------------------------------------------------------------------------

# The module classes an RNNModel is made of, recorded as Inert objects. nn.RNN also serves RNN_TANH and RNN_RELU.
MODULE_CLASSES = {
    ("torch.nn.modules.rnn", "LSTM"), ("torch.nn.modules.rnn", "GRU"), ("torch.nn.modules.rnn", "RNN"),
    ("torch.nn.modules.sparse", "Embedding"),  # the encoder
    ("torch.nn.modules.linear", "Linear"),  # the decoder
    ("torch.nn.modules.dropout", "Dropout"),  # `drop`
    # The object torch 0.3's nn.RNN kept in `dropout_state` after a cuDNN run; it pickles as its class and a
    # placeholder string.
    ("torch.backends.cudnn.rnn", "Unserializable"),
}
# The model's own class is admitted by its name under any module: the example's main.py saves it as
# `model.RNNModel`, a script that defines it as `__main__.RNNModel`, a package as `package.model.RNNModel`.
MODEL_CLASS_NAME = "RNNModel"

STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
# The storage classes are named under `torch`, or under `torch.cuda` for a model saved on a GPU (torch 0.3 and
# 0.4, which kept the device in the class; later ones say `torch` and put the device in the location).
STORAGE_MODULES = ("torch", "torch.cuda")

CALLABLES = {
    ("torch._utils", "_rebuild_tensor"): Call(rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): Call(rebuild_tensor_v2),
    ("torch._utils", "_rebuild_parameter"): Call(as_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): Call(as_parameter),
    ("torch.nn.parameter", "Parameter"): Call(as_parameter),
    ("torch.nn.backends.thnn", "_get_thnn_function_backend"): Call(old_thnn_backend),
    # nn.Module's dicts of parameters, buffers, modules and hooks (REDUCE with no arguments, then SETITEMS).
    ("collections", "OrderedDict"): AttributedDict,
    # Built-in types, whose calls only build data. set: nn.Module's `_non_persistent_buffers_set` (torch 1.6 on),
    # its module spelled `__builtin__` under protocol 2. tuple: torch.Size, a tuple subclass, closed by NEWOBJ in
    # torch 0.4 to 1.0 and by REDUCE later.
    ("builtins", "set"): set, ("__builtin__", "set"): set,
    ("torch", "Size"): tuple,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Reads one pickle of a checkpoint file into Inert objects, TensorRecords and plain data. The storages its
    persistent ids name are collected in `storages` (key -> record), for the caller to fill with their bytes."""

    def __init__(self, file: BinaryIO, storages: dict[str, StorageRecord]):
        # latin1 decodes the 8-bit strings of a Python 2 pickle byte for byte (torch.load's advice for them).
        super().__init__(file, encoding="latin1")
        self.storages = storages
        self.module_classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in MODULE_CLASSES or (name == MODEL_CLASS_NAME and is_dotted_name(module)):
            path = f"{module}.{name}"
            return self.module_classes.setdefault(path, type(name, (Inert,), {"class_path": path}))
        if module in STORAGE_MODULES and name in STORAGE_DTYPES:
            return StorageKind(STORAGE_DTYPES[name])
        if (module, name) in CALLABLES:
            return CALLABLES[(module, name)]
        raise PickleRefused(f"its pickle asks for {shown(f'{module}.{name}')}, which is not among the objects a "
                            f"checkpoint of a word_language_model RNNModel holds; nothing of the file was run")

    def persistent_load(self, saved_id: Any) -> Any:
        """torch's persistent ids: ('storage', kind, key, location, numel) in the zip format; the legacy format
        adds a view (key, offset, numel) or None, and names each module class once as ('module', class,
        source file, source)."""
        if not (isinstance(saved_id, tuple) and saved_id):
            raise PickleRefused(f"its pickle has the persistent id {shown(saved_id)}, which torch never writes")
        tag = text(saved_id[0])
        if tag == "module" and len(saved_id) == 4:
            return self.module_class(saved_id[1])
        if tag == "storage" and len(saved_id) in (5, 6):
            kind, key, _location, numel = saved_id[1:5]  # the location is ignored: every tensor comes to the CPU
            view = saved_id[5] if len(saved_id) == 6 else None
            if not isinstance(kind, StorageKind):
                raise PickleRefused(f"a persistent id names the storage class {shown(kind)}")
            root = self.storage(text(key), kind.dtype, whole_number(numel, "storage size"))
            if view is None:
                return root
            view_key, offset, view_numel = view
            if whole_number(offset, "view offset") + whole_number(view_numel, "view size") > root.numel:
                raise PickleRefused(f"a view of storage {shown(root.key)} ends past its {root.numel:,} elements")
            return StorageRecord(text(view_key), kind.dtype, view_numel, root, offset)
        raise PickleRefused(f"its pickle has the persistent id {shown(tag)} of {len(saved_id)} parts, which torch "
                            f"never writes")

    def module_class(self, cls: Any) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Inert) and cls in self.module_classes.values()):
            raise PickleRefused(f"a module persistent id names {shown(cls)}, not a module class")
        return cls

    def storage(self, key: str, dtype: torch.dtype, numel: int) -> StorageRecord:
        """The one record of storage `key`, however many tensors share it."""
        record = self.storages.setdefault(key, StorageRecord(key, dtype, numel))
        if (record.dtype, record.numel) != (dtype, numel):
            raise PickleRefused(f"storage {shown(key)} is named as {record.numel:,} {record.dtype} elements and as "
                                f"{numel:,} {dtype} ones")
        return record


def text(value: Any) -> str:
    """A persistent id's strings: str, or bytes from Python 2 pickles."""
    if isinstance(value, bytes):
        return value.decode("latin1")
    if isinstance(value, str):
        return value
    raise PickleRefused(f"a persistent id holds {shown(value)} where a string belongs")


def is_dotted_name(module: str) -> bool:
    return all(part.isidentifier() for part in module.split("."))


def shown(value: Any) -> str:
    """Something of the file in a message: one printable line of at most 80 characters, whatever the file holds."""
    text = value if isinstance(value, str) and value.isprintable() else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
