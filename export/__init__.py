"""Everything that needs torch or coremltools: the PyTorch shell, Core ML conversion, the
updatable head, its rule linter and the manifest.

This package must never import mlx: it runs on machines (CI Linux boxes, Intel Macs) where the
MLX side is not installed, and the MLX side reaches into it only lazily from the CLI.

Public entry points live in submodules so that importing ``export`` stays cheap:

- ``export.pipeline``: ``ExportConfig``, ``export_folder`` (what the CLI calls)
- ``export.convert_bin``: ``convert_bin_folder`` (``python -m export.convert_bin SRC DST``)
- ``export.shell``: the trace-friendly BERT / MobileBERT modules
- ``export.updatable_rules``: ``lint_spec`` / ``check_spec``
"""
