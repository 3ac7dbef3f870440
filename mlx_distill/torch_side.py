"""Calling into ``export/`` (torch, coremltools) from the MLX side's commands and build stages.

Standard library only: importing it costs nothing, and it never imports torch itself.
"""

from __future__ import annotations


def quiet_coremltools() -> None:
    """coremltools logs import-time warnings that do not apply to us on Linux (no Core ML runtime
    proxies, an untested-but-verified torch version, sklearn) and draws tqdm bars per conversion
    pass; our commands report what matters themselves. Must run before coremltools is imported."""
    import logging
    import os
    import warnings

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"coremltools\.")
    os.environ.setdefault("TQDM_DISABLE", "1")
