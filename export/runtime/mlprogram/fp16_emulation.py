"""fp16 report for an ML Program package, in the same form as the NeuralNetwork one.

The package is run twice on the samples: once in fp32 (fp16 constants widened: the reference) and
once in half precision - as stored for an fp16 program, or with every fp32 value held in fp16 for
an fp32 one (what it would do at fp16 compute precision). The report names the first op whose
output overflows 65504 or goes NaN, every ``layer_norm`` whose input's mean square exceeds 65504
(an fp16 accumulator would overflow there although no output does), and the fp16 outputs' drift.
It is ``export.runtime.neuralnetwork.fp16_emulation.Fp16Report``, so the check reads both runtimes' reports the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from export.runtime.mlprogram.interpreter import MLProgramExecutor
from export.runtime.neuralnetwork.fp16_emulation import Fp16Report, compare_runs


def half_executor(package: Union[str, Path]) -> MLProgramExecutor:
    """The package in half precision: as stored if it computes in fp16, else emulated."""
    stored = MLProgramExecutor(package, "stored")
    return stored if stored.computes_in_fp16() else MLProgramExecutor(package, "fp16")


def _norm_risk(program, blobs: Mapping[str, Any]) -> dict[str, float]:
    """Largest per-row mean square of the centred input of each ``layer_norm``, from an fp32 run's blobs."""
    risk = {}
    for op in program.operations:
        if op.type != "layer_norm":
            continue
        x = np.asarray(blobs[op.inputs["x"].arguments[0].name], np.float64)
        axes = tuple(int(a) for a in np.atleast_1d(blobs[op.inputs["axes"].arguments[0].name]))
        centred = x - x.mean(axis=axes, keepdims=True)
        risk[f"{op.outputs[0].name} (layer_norm)"] = float(np.max(np.mean(centred ** 2, axis=axes)))
    return risk


def fp16_report(package: Union[str, Path], samples: Sequence[Mapping[str, Any]], max_output_diff: float = 1e-2,
                full: Optional[MLProgramExecutor] = None, half: Optional[MLProgramExecutor] = None,
                on_half_trace: Optional[Callable[[Any], None]] = None) -> Fp16Report:
    """Run ``samples`` through the package in fp32 and in half precision and compare op by op.

    ``full`` / ``half``: executors already loaded (precision "fp32" and ``half_executor``'s), so a
    caller holding them does not load the package again. Constants saturate at +-65504 when held
    in fp16, so no weight is reported as overflowing.
    """
    full = full or MLProgramExecutor(package, "fp32")
    return compare_runs(full, half or half_executor(package), samples, max_output_diff,
                        lambda blobs: _norm_risk(full.program, blobs), on_half_trace=on_half_trace)
