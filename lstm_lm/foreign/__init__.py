"""Importing models trained by other programs: the word_language_model RNNModel of pytorch/examples and of
colorlessgreenRNNs, read from its torch.save checkpoint without running any of the file's pickle."""
