"""A NumPy runtime for Core ML NeuralNetwork specs, plus a simulated on-device update.

coremltools predicts and trains only on macOS. This package reads the spec that ships and runs it
with NumPy, so Linux CI can check parity against PyTorch, find fp16 overflow before a device does,
and check that an updatable model really learns - all from the exact file the app will load.

Entry points (import the submodules directly; this module stays import-light):

- ``export.runtime.neuralnetwork.pipelines.load_executor(model, precision="fp32")`` -> executor with
  ``predict(inputs)``, ``run(inputs, keep_blobs=False)`` and ``intermediates(inputs)``
- ``export.runtime.neuralnetwork.fp16_emulation.fp16_report(model, samples)`` -> ``Fp16Report``
- ``export.runtime.neuralnetwork.simulate_update.simulate_update(model, batch, parameters=None, output_path=None)``
  -> ``UpdateResult`` (updatable NeuralNetworks and updatable pipelines)
- ``export.runtime.neuralnetwork.registry.supported_layer_types()``

See README.md for the assumed semantics. Never imports mlx (see ``export/__init__.py``).
"""
