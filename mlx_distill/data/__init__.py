"""Labelled-text data: reading and validating user files, splits and batches."""

from mlx_distill.data.files import DataError, Example, read_examples, read_texts
from mlx_distill.data.splits import label_set, stratified_split

__all__ = ["DataError", "Example", "label_set", "read_examples", "read_texts", "stratified_split"]
