"""Using a trained model: perplexity and bits per character (perplexity.py), with the neural cache (cache.py) and
dynamic evaluation (dynamic.py) and the search of their settings (adaptive.py), sampling (generate.py), training
curves (curves.py), and the figure helpers the plots share (figures.py).

Imports: the run directory, data, model, hardware and the common modules; never training.
"""
