"""A NumPy interpreter for the ML Programs we ship (``Classifier.mlpackage``, ``Encoder.mlpackage``).

Entry points (import the submodules; this module stays import-light):

- ``export.mlprogram.interpreter.MLProgramExecutor(package, precision="stored")`` with
  ``predict(inputs)`` and ``run(inputs, keep_blobs=False)``;
- ``export.mlprogram.fp16.fp16_report(package, samples)`` -> ``export.nnexec.fp16.Fp16Report``;
- ``export.mlprogram.ops.supported_ops()``.

Never imports mlx (see ``export/__init__.py``).
"""
