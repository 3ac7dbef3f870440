"""Labelled-text data: reading and validating user files, checks, overlap removal and splits."""

from mlx_distill.data.checks import DataReport, SplitCounts, check_labelled, read_labelled
from mlx_distill.data.files import read_examples, read_texts
from mlx_distill.data.normalise import normalise_text
from mlx_distill.data.overlap import dedupe, drop_overlaps
from mlx_distill.data.records import DataError, Example
from mlx_distill.data.splits import label_set, stratified_split
from mlx_distill.data.unlabeled import read_unlabeled

__all__ = [
    "DataError", "DataReport", "Example", "SplitCounts", "check_labelled", "dedupe", "drop_overlaps",
    "label_set", "normalise_text", "read_examples", "read_labelled", "read_texts", "read_unlabeled", "stratified_split",
]
