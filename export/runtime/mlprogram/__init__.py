"""A NumPy interpreter for the ML Programs we ship (``Classifier.mlpackage``, ``Encoder.mlpackage``).

Entry points (import the submodules; this module stays import-light):

- ``export.runtime.mlprogram.interpreter.MLProgramExecutor(package, precision="stored")`` with
  ``predict(inputs)`` and ``run(inputs, keep_blobs=False)``;
- ``export.runtime.mlprogram.fp16_emulation.fp16_report(package, samples)`` -> ``export.runtime.neuralnetwork.fp16_emulation.Fp16Report``;
- ``export.runtime.mlprogram.ops.supported_ops()``.

Never imports mlx (see ``export/__init__.py``).
"""
