"""Using a trained model: perplexity and bits per character (perplexity.py), sampling (generate.py), training
curves (curves.py), and the figure helpers the plots share (figures.py).

Imports: the run directory, data, model, hardware and the common modules; never training.
"""
