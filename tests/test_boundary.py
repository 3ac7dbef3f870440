"""The MLX side's half of the package boundary (the export side's is
tests/export/test_export_folder.py::test_export_package_never_imports_mlx)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: What only export/ may import. mlx_distill reaches export/ lazily, inside the functions of its
#: torch-side commands and build stages (cli, build.stages, build.config, build.reference), so
#: importing any mlx_distill module must load none of these. ``mlx_distill.torch_side`` needs no
#: exception: it is standard library only and imports nothing of torch itself.
TORCH_SIDE = ("torch", "coremltools", "transformers", "export")


def test_mlx_distill_never_imports_torch():
    """Every module of mlx_distill (but the ``__main__`` ones, which run a command), imported in
    one fresh interpreter, leaves torch, coremltools, transformers and export/ unloaded."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import mlx_distill\n"
        "names = sorted(m.name for m in pkgutil.walk_packages(mlx_distill.__path__, 'mlx_distill.')\n"
        "               if not m.name.endswith('.__main__'))\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        f"found = sorted(m for m in sys.modules if m.split('.')[0] in {TORCH_SIDE!r})\n"
        "print(json.dumps({'modules': names, 'found': found}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    # Not vacuous: the walk reached the subpackages and the modules that call into export/.
    assert {"mlx_distill.cli", "mlx_distill.torch_side", "mlx_distill.build.stages", "mlx_distill.train.trainer",
            "mlx_distill.models.mobilebert", "mlx_distill.augment.backends"} <= set(seen["modules"])
    assert seen["found"] == []
