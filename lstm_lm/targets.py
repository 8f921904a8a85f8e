"""The target id that scores nothing: data layouts write it where a column is padded, and the model's loss and
the scorers skip it. It lives below both, as neither layer may import the other."""

IGNORE = -100  # the ignore_index of cross-entropy
