"""What the safe reader refuses, in one line naming the file and the culprit, and that nothing of a hostile file
ran: each payload here does run under plain pickle.loads, and leaves no trace under the reader."""

from __future__ import annotations

import os
import pickle
import shlex
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from lstm_lm.errors import UserError
from lstm_lm.foreign.pytorch_example import read_example_model
from lstm_lm.foreign.torch_file import read_checkpoint

from .example_model import RNNModel
from .old_torch import SYS_INFO, legacy_file
from .pickle_writer import Build, Global, PersistentId, Reduce, dumps


def zip_checkpoint(path: Path, data_pkl: bytes, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", b"little")
        for name, data in (extra or {}).items():
            archive.writestr(f"archive/{name}", data)
    return path


def small_model() -> RNNModel:
    torch.manual_seed(0)
    return RNNModel("LSTM", 11, 4, 4, nlayers=1, dropout=0.0)


def refusal(path: Path) -> str:
    with pytest.raises(UserError) as caught:
        read_example_model(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def test_a_pickle_calling_os_system_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    payload = dumps(Reduce(Global("os", "system"), (f"touch {shlex.quote(str(marker))}",)))
    pickle.loads(payload)
    assert marker.exists()  # the payload works where pickle runs it
    marker.unlink()

    message = refusal(zip_checkpoint(tmp_path / "hostile.pt", payload))
    assert "asks for os.system" in message and "nothing of the file was run" in message
    assert not marker.exists()


def test_a_legacy_file_calling_eval_is_refused(tmp_path):
    marker = tmp_path / "ran"
    payload = dumps(Reduce(Global("builtins", "eval"), (f"open({str(marker)!r}, 'w').close()",)))
    path = tmp_path / "hostile.pt"
    path.write_bytes(legacy_file(payload, {}))
    assert "asks for builtins.eval" in refusal(path)
    assert not marker.exists()


class RunsOnLoad:
    """What a hostile checkpoint carries: an object whose unpickling runs a shell command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_model_saved_with_a_hostile_attribute_is_refused(tmp_path, zip_format):
    marker = tmp_path / "ran"
    model = small_model()
    model.extra = RunsOnLoad(f"touch {shlex.quote(str(marker))}")
    path = tmp_path / "model.pt"
    torch.save(model, path, _use_new_zipfile_serialization=zip_format)
    message = refusal(path)
    assert f"asks for {os.system.__module__}.system" in message  # posix.system on Linux
    assert not marker.exists()


def test_a_module_class_the_example_never_holds_is_refused(tmp_path):
    model = small_model()
    model.activation = nn.ReLU()
    path = tmp_path / "model.pt"
    torch.save(model, path)
    assert "asks for torch.nn.modules.activation.ReLU" in refusal(path)


def test_setting_the_state_of_a_stand_in_is_refused(tmp_path):
    """BUILD on the stand-in for _rebuild_tensor would otherwise change its defaults for every later file, and on a
    module class its methods for every instance."""
    payload = dumps(Build(Global("torch._utils", "_rebuild_tensor"), (None, {"__defaults__": (0,)})))
    assert "sets the state of Call" in refusal(zip_checkpoint(tmp_path / "hostile.pt", payload))
    payload = dumps(Build(Global("torch.nn.modules.linear", "Linear"), {"__setstate__": Global("builtins", "set")}))
    assert "damaged one (TypeError" in refusal(zip_checkpoint(tmp_path / "hostile.pt", payload))


def test_an_unknown_persistent_id_is_refused(tmp_path):
    payload = dumps(PersistentId(("shell", "rm -rf /")))
    assert "the persistent id shell of 2 parts" in refusal(zip_checkpoint(tmp_path / "odd.pt", payload))


def test_a_tensor_reaching_past_its_storage_is_refused(tmp_path):
    storage = PersistentId(("storage", Global("torch", "FloatStorage"), "0", "cpu", 4))
    tensor = Reduce(Global("torch._utils", "_rebuild_tensor"), (storage, 0, (3, 3), (3, 1)))
    path = zip_checkpoint(tmp_path / "odd.pt", dumps([tensor]), {"data/0": bytes(16)})
    with pytest.raises(Exception) as caught:
        read_checkpoint(path)[0].tensor()
    assert "reads element 8 of storage 0, which has 4" in str(caught.value)


@pytest.mark.parametrize("change, message", [
    (lambda model: setattr(model, "decoder", nn.Embedding(11, 4)),
     "the model's decoder is a torch.nn.modules.sparse.Embedding, not an nn.Linear"),
    (lambda model: setattr(model, "rnn_type", "GRU"), "the model says rnn_type GRU but its rnn runs LSTM"),
    (lambda model: setattr(model, "rnn", nn.LSTM(4, 4, bidirectional=True)), "rnn is bidirectional"),
    (lambda model: delattr(model, "encoder"), "the model has no `encoder` module")],
    ids=["embedding-as-decoder", "rnn-type-disagrees", "bidirectional", "no-encoder"])
def test_a_model_of_another_shape_is_named(tmp_path, change, message):
    model = small_model()
    change(model)
    path = tmp_path / "model.pt"
    torch.save(model, path)
    assert message in refusal(path)


def test_a_state_dict_is_not_a_whole_model(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(small_model().state_dict(), path)
    assert "holds a dict (a state_dict?)" in refusal(path)


def test_a_big_endian_checkpoint_is_refused(tmp_path):
    big = dict(SYS_INFO, little_endian=False)
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(legacy_file(dumps(None), {}, sys_info=big))
    assert "big-endian" in refusal(legacy)
    zipped = tmp_path / "zip.pt"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", dumps(None))
        archive.writestr("archive/byteorder", b"big")
    assert "big-endian" in refusal(zipped)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_cut_checkpoint_is_a_damaged_one(tmp_path, zip_format):
    path = tmp_path / "model.pt"
    torch.save(small_model(), path, _use_new_zipfile_serialization=zip_format)
    path.write_bytes(path.read_bytes()[: path.stat().st_size - 100])
    message = refusal(path)
    assert "damaged" in message


def test_files_that_are_no_checkpoints(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a model\n")
    assert "not a file torch.save wrote" in refusal(text)
    script = zip_checkpoint(tmp_path / "scripted.pt", dumps(None), {"constants.pkl": dumps(())})
    assert "TorchScript archive" in refusal(script)
    assert "file not found" in refusal(tmp_path / "missing.pt")
