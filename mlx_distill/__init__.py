"""mlx_distill: distil a BERT-family teacher into a MobileBERT student in MLX, ship it to Core ML.

Importing this package first loads an optimised BLAS on Linux (see :mod:`mlx_distill.blas`);
that has to happen before ``mlx.core`` is imported anywhere in the process, which is why it sits
here and why every MLX-side module imports ``mlx`` only after this package is initialised.
"""

from mlx_distill.blas import ensure_fast_blas

__version__ = "0.1.0"

#: What the one-time BLAS preload did in this process (a fact about the process, not mutable state).
BLAS_STATUS = ensure_fast_blas()
