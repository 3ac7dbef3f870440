"""Trace-friendly PyTorch re-implementations of BERT and MobileBERT sequence classifiers.

Parameter names are exactly Hugging Face's, so a student folder's ``model.safetensors`` loads with
``load_state_dict(strict=True)``. The modules exist because transformers' own code is not
trace-friendly for coremltools 9.0 (``new_ones(dtype=bool)`` in the mask helper, shapes read from
tensors, attention-backend dispatch); owning the math keeps the conversion stable.
"""

from export.shell.bert import BertShellConfig, BertForSequenceClassificationShell
from export.shell.common import ClassifierProbabilities, PooledEncoder
from export.shell.load import ShellLoadError, build_shell, load_shell_from_folder, load_state_into
from export.shell.mobilebert import MobileBertShellConfig, MobileBertForSequenceClassificationShell

__all__ = [
    "BertShellConfig",
    "BertForSequenceClassificationShell",
    "MobileBertShellConfig",
    "MobileBertForSequenceClassificationShell",
    "ClassifierProbabilities",
    "PooledEncoder",
    "ShellLoadError",
    "build_shell",
    "load_shell_from_folder",
    "load_state_into",
]
