"""Check an export folder without a Mac: shape, parity, extreme inputs, updatable rules, a simulated
on-device update and fp16 range - the seed's "run check_update.py before dragging the model into
Xcode".

```python
from export.check import run_checks
report = run_checks("runs/demo/coreml", model_dir="runs/demo/student")
print(report.summary())          # one line per check: PASS / FAIL / SKIP and the key number
report.passed                    # every check that ran passed; check.json holds the details
```

``python -m export.check PATH [--model DIR] [--json]`` runs everything but the MLX parity;
``python -m mlx_distill check PATH`` adds it. Never imports mlx.
"""

from export.check.config import DEFAULT_TEXTS, CheckConfig
from export.check.report import CheckReport, CheckResult
from export.check.run import CHECK_JSON, run_checks

__all__ = ["CHECK_JSON", "DEFAULT_TEXTS", "CheckConfig", "CheckReport", "CheckResult", "run_checks"]
