"""Text to token ids: a corpus's splits read, a tokenizer fitted on train, the ids cached, and laid out in windows.

    corpus files ──splits.py──> text per split ──tokenizers.py──> token ids ──cache.py──> ~/.cache/lstm-lm
        ──batches.py──> (T, B) BPTT windows for training, an (L, B) layout scoring every token for evaluation

Imports: only the common modules (config, errors, atomic, reading, targets); never the model or training.
"""
