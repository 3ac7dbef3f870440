"""``python -m mlx_distill.augment ...``: the ``augment`` command on its own (same parser)."""

import sys

from mlx_distill.augment.cli import main

sys.exit(main())
