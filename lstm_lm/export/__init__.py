"""Exporting a trained run for other runtimes: the model as one step function (token ids and state in,
log-probabilities and new state out) that runs without lstm-lm, as an ONNX file for onnxruntime or a TorchScript
file for torch.jit.load, with a JSON file beside it that holds the vocabulary and the state's shapes.

step_module.py holds the step function and the state's layout; to_onnx.py and to_torchscript.py turn it into
bytes; check.py runs those bytes against lstm-lm's own forward; sidecar.py writes what the JSON file holds; and
command.py is `lstm-lm export` (docs/export.md).

Imports: rundir, model, data, hardware and the common modules.
"""
