"""Targeted syntactic evaluation: does the model prefer the grammatical member of a minimal pair?

    test files or the built-in suite ──readers / suite──> Suite(items: good sentence, bad sentence, groups)
        ──pairs (pretokenized the way the training corpus was, encoded)──> ScoreRequest(prefix, continuations)
        ──scoring (batched, packed)──> log-probabilities ──report──> Rich tables, report.json, items.jsonl, plot

    SyntaxGym suites ──syntaxgym_suite, syntaxgym_formula──> GymSuite(items: conditions of regions, predictions)
        ──syntaxgym_align (the same pretokenizing; regions by words or character spans)──> ids, region tokens
        ──scoring (token_log_probs)──> region surprisals ──syntaxgym_evaluate──> predictions per item
        ──syntaxgym_report──> accuracy per prediction, suite and circuit, in the same report, items file and plot

Readers skip the few malformed items a published file may hold (two forms the same word), count them in the
report and name them in warnings; --strict refuses such a file instead.
"""
