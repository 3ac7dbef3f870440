"""Labelled-text data: reading and validating user files, splits and batches."""

from mlx_distill.data.files import DataError, Example, read_examples, read_texts

__all__ = ["DataError", "Example", "read_examples", "read_texts"]
