"""The run directory: everything needed to rebuild, evaluate, sample from and resume a run.

    RUN_DIR/
      config.yaml      the fully resolved config
      tokenizer.json   the tokenizer (plain JSON)
      model.pt         best weights by validation (a state dict of tensors)
      checkpoint.pt    the latest weights, optimizer and trainer state, RNG state and hidden state, for --resume
      checkpoint-STEP.pt   older checkpoints, with train.keep_checkpoints > 1; resume falls back to them
      run.json         what the run is: format version, status, sizes, best and final numbers
      metrics.jsonl    one JSON record per line: progress, validation, test
      train.lock       locked by the trainer training the directory; says its process id and host (run_lock.py)

Every file is written atomically but train.lock, which holds no results; tensors are read back only with
`torch.load(weights_only=True)` (checkpoint.py).
"""

FORMAT_VERSION = 1
CONFIG, TOKENIZER, WEIGHTS, CHECKPOINT, RUN_INFO, METRICS = (
    "config.yaml", "tokenizer.json", "model.pt", "checkpoint.pt", "run.json", "metrics.jsonl")
