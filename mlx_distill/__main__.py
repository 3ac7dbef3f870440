"""``python -m mlx_distill``: see :mod:`mlx_distill.cli`."""

import sys

from mlx_distill.cli import main

sys.exit(main())
