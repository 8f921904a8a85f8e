"""Legacy-format checkpoints of an RNNModel as torch 0.3 and 0.4 wrote them, which torch 2.13 writes differently
even with `_use_new_zipfile_serialization=False`:

    torch 0.3, trained on a GPU (colorlessgreenRNNs' models):  storages `torch.cuda.FloatStorage` at 'cuda:0';
        tensors `torch._utils._rebuild_tensor(storage, offset, size, stride)`; a Parameter as
        `torch.nn.parameter.Parameter(tensor)` followed by BUILD with the Variable's (requires_grad, volatile,
        hooks); the recurrent weights all views of one storage, cuDNN's flat weight buffer, at their offsets; the
        LSTM's `dropout_state` holding a `torch.backends.cudnn.rnn.Unserializable` and its `_data_ptrs`
    torch 0.4 on the CPU:  `_rebuild_tensor_v2` with hooks None and the size a `torch.Size` (NEWOBJ); a Parameter as
        `Parameter(tensor, requires_grad)`
    both:  every module's `_backend` pickled as a call of `torch.nn.backends.thnn._get_thnn_function_backend`,
        and each module class named once through the persistent id ('module', class, source file, source)
"""

from __future__ import annotations

import pickle
import struct

import torch
from torch import nn

from .example_model import RNNModel
from .pickle_writer import Global, New, OrderedDict, PersistentId, Reduce, dumps

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
SYS_INFO = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 8}}

THNN_BACKEND = Global("torch.nn.backends.thnn", "_get_thnn_function_backend")
PARAMETER = Global("torch.nn.parameter", "Parameter")
REBUILD_TENSOR = Global("torch._utils", "_rebuild_tensor")
REBUILD_TENSOR_V2 = Global("torch._utils", "_rebuild_tensor_v2")
SIZE = Global("torch", "Size")
UNSERIALIZABLE = Global("torch.backends.cudnn.rnn", "Unserializable")


def legacy_file(main_pickle: bytes, storages: dict[str, torch.Tensor], sys_info: dict = SYS_INFO) -> bytes:
    """The legacy layout: magic number, protocol version, sys_info, the object, the sorted storage keys, then each
    storage as its element count and its fp32 elements, little-endian."""
    keys = sorted(storages)
    parts = [pickle.dumps(value, protocol=2) for value in (MAGIC_NUMBER, PROTOCOL_VERSION, sys_info)]
    parts += [main_pickle, pickle.dumps(keys, protocol=2)]
    for key in keys:
        values = storages[key].detach().reshape(-1).tolist()
        parts.append(struct.pack("<q", len(values)) + struct.pack(f"<{len(values)}f", *values))
    return b"".join(parts)


class OldCheckpoint:
    """The pickle nodes and storages of one old checkpoint of `model`, in the form of torch `era` ("0.3" or "0.4")."""

    def __init__(self, model: RNNModel, era: str):
        self.era = era
        self.storages: dict[str, torch.Tensor] = {}
        self.parameters: dict[int, Reduce] = {}  # id(Parameter) -> its node: a tied weight is one node
        storage_class = Global("torch.cuda" if era == "0.3" else "torch", "FloatStorage")
        self.location = "cuda:0" if era == "0.3" else "cpu"
        self.storage_class = storage_class
        # torch 0.3 after a cuDNN run: the recurrent weights are views of one flat buffer.
        self.flat_key, self.flat_offsets = None, {}
        if era == "0.3":
            self.flat_key = self.new_key()
            pieces, offset = [], 0
            for parameter in model.rnn.parameters():
                self.flat_offsets[id(parameter)] = offset
                pieces.append(parameter.detach().reshape(-1))
                offset += parameter.numel()
            self.storages[self.flat_key] = torch.cat(pieces)
        self.root = self.module(model, Global("model", "RNNModel"),
                                {"rnn_type": model.rnn_type, "nhid": model.nhid, "nlayers": model.nlayers},
                                modules={name: self.child(getattr(model, name))
                                         for name in ("drop", "encoder", "rnn", "decoder")})

    def file_bytes(self) -> bytes:
        return legacy_file(dumps(self.root), self.storages)

    def new_key(self) -> str:
        return str(140_000_000_000_000 + 4096 * len(self.storages))  # the addresses old torch used as keys

    def child(self, module: nn.Module) -> New:
        kind = type(module)
        if kind is nn.Dropout:
            return self.module(module, Global("torch.nn.modules.dropout", "Dropout"),
                               {"p": module.p, "inplace": False})
        if kind is nn.Embedding:
            return self.module(module, Global("torch.nn.modules.sparse", "Embedding"),
                               {"num_embeddings": module.num_embeddings, "embedding_dim": module.embedding_dim,
                                "padding_idx": None, "max_norm": None, "norm_type": 2, "scale_grad_by_freq": False,
                                "sparse": False})
        if kind is nn.Linear:
            return self.module(module, Global("torch.nn.modules.linear", "Linear"),
                               {"in_features": module.in_features, "out_features": module.out_features})
        settings = {"mode": module.mode, "input_size": module.input_size, "hidden_size": module.hidden_size,
                    "num_layers": module.num_layers, "bias": True, "batch_first": False,
                    "dropout": module.dropout, "bidirectional": False,
                    "_all_weights": [list(names) for names in module._all_weights]}
        if kind is nn.RNN:
            settings["nonlinearity"] = module.nonlinearity
        if self.era == "0.3":
            settings["dropout_state"] = {"desc_0": New(UNSERIALIZABLE, "<unserializable>")}
            settings["_data_ptrs"] = [94_000_000_000_000 + 4 * offset for offset in self.flat_offsets.values()]
            settings["_param_buf_size"] = int(self.storages[self.flat_key].numel())
        else:
            settings["dropout_state"] = {}
        return self.module(module, Global("torch.nn.modules.rnn", kind.__name__), settings)

    def module(self, module: nn.Module, cls: Global, settings: dict, modules: dict | None = None) -> New:
        """NEWOBJ of the class (through its 'module' persistent id), then BUILD with the module's __dict__."""
        source = f"class {cls.name}(Module):\n    ...\n"
        state = {"_backend": Reduce(THNN_BACKEND, ()),
                 "_parameters": OrderedDict({name: self.parameter(parameter)
                                             for name, parameter in module._parameters.items()}),
                 "_buffers": OrderedDict(), "_backward_hooks": OrderedDict(), "_forward_hooks": OrderedDict(),
                 "_forward_pre_hooks": OrderedDict(), "_modules": OrderedDict(modules or {}), "training": True,
                 **settings}
        return New(PersistentId(("module", cls, f"/home/user/{cls.module}.py", source)), state)

    def parameter(self, parameter: nn.Parameter) -> Reduce:
        if id(parameter) not in self.parameters:
            tensor = self.tensor(parameter)
            self.parameters[id(parameter)] = (Reduce(PARAMETER, (tensor,), (True, False, None)) if self.era == "0.3"
                                              else Reduce(PARAMETER, (tensor, True)))
        return self.parameters[id(parameter)]

    def tensor(self, parameter: nn.Parameter) -> Reduce:
        if id(parameter) in self.flat_offsets:
            key, offset, numel = self.flat_key, self.flat_offsets[id(parameter)], self.storages[self.flat_key].numel()
        else:
            key, offset, numel = self.new_key(), 0, parameter.numel()
            self.storages[key] = parameter.detach().clone()
        storage = PersistentId(("storage", self.storage_class, key, self.location, int(numel), None))
        size, stride = tuple(parameter.shape), parameter.stride()
        if self.era == "0.3":
            return Reduce(REBUILD_TENSOR, (storage, offset, size, stride))
        return Reduce(REBUILD_TENSOR_V2, (storage, offset, New(SIZE, args=(size,)), stride, False, None))
