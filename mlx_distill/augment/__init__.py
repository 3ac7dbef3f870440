"""augment: an LLM writes labelled example texts, with provenance, for the labels of a data file.

Local by default (mlx-lm: a model folder, a Hugging Face repo id from the local cache, or a
``.gguf`` file converted once), or any OpenAI-compatible endpoint the user configures. See
:mod:`mlx_distill.augment.run` for the resume contract and :mod:`mlx_distill.augment.prompts`
for the template placeholders.
"""

from mlx_distill.augment.config import AugmentConfig
from mlx_distill.augment.parse import Parsed, parse_output
from mlx_distill.augment.run import AugmentResult, run_augment, summary_lines

__all__ = ["AugmentConfig", "AugmentResult", "Parsed", "parse_output", "run_augment", "summary_lines"]
