"""The run directory's format in one place: what it holds (layout.py), its small files and rebuilding a run from
them (run_files.py), tensors and training checkpoints (checkpoint.py), and the lock of the training process
(run_lock.py).

Imports: the model (to rebuild one), the tokenizers (to read one back), hardware and the common modules.
"""
