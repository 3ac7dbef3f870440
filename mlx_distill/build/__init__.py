"""``python -m mlx_distill build CONFIG.toml``: every stage of one build, resumable, with a report.

Importing this package loads nothing heavy: ``settings`` is pure standard library, so the stage
configs on both sides (MLX and torch) can use it, and the stages import their libraries when run.
"""
