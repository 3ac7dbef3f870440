"""Student folder -> Core ML files. Needs torch and coremltools; never imports mlx (it runs where
MLX is not installed, and the MLX side reaches in only lazily from the CLI).

``from export import ExportConfig, export_folder`` (loaded on first use, so ``import export.shell``
stays cheap). The subpackages follow the pipeline: ``shell`` -> ``convert`` -> ``updatable`` ->
``manifest`` -> ``runtime`` (NumPy execution of the shipped files) -> ``check``.
"""

_PUBLIC = ("ExportConfig", "ExportResult", "export_folder")


def __getattr__(name: str):
    if name in _PUBLIC:
        from export import folder

        return getattr(folder, name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
