"""lstm-lm: train multi-layer LSTM language models and test what they learn."""

__version__ = "0.1.0"
