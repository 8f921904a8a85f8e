"""Targeted syntactic evaluation: does the model prefer the grammatical member of a minimal pair?

    test files or the built-in suite ──readers / suite──> Suite(items: good sentence, bad sentence, groups)
        ──pairs (pretokenized the way the training corpus was, encoded)──> ScoreRequest(prefix, continuations)
        ──scoring (batched, packed)──> log-probabilities ──report──> Rich tables, report.json, items.jsonl, plot
"""
