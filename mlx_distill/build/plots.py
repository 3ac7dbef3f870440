"""The report's PNG plots, drawn with matplotlib's Agg backend (no display needed).

Each function takes plain data (the training logs' records, metric dicts) and writes one PNG
atomically; sizes and fonts are chosen to stay readable when report.md is viewed on GitHub.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlx_distill.fileio import atomic_write

_PARTS = ("kd", "ce", "hidden", "attention", "embedding")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 110})
    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _steps(records: list[dict]) -> list[dict]:
    return [r for r in records if "loss" in r]


def loss_curves(teacher: list[dict], distill: list[dict], weights: dict[str, float], path: Path) -> Path:
    """Left: the teacher's cross-entropy. Right: the distillation loss and each weighted part."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rows = _steps(teacher)
    if rows:
        left.plot([r["step"] for r in rows], [r["loss"] for r in rows], color="tab:blue", label="cross-entropy")
        left.legend()
    else:
        left.text(0.5, 0.5, "teacher was not fine-tuned\n(already a classifier)", ha="center", va="center",
                  transform=left.transAxes)
    left.set(title="teacher fine-tuning loss", xlabel="optimizer step", ylabel="loss")
    rows = _steps(distill)
    steps = [r["step"] for r in rows]
    right.plot(steps, [r["loss"] for r in rows], color="black", linewidth=2, label="total")
    for part in _PARTS:
        if rows and part in rows[0]:
            weight = weights.get(part, 1.0)
            right.plot(steps, [weight * r[part] for r in rows], label=f"{part} × {weight:g}")
    right.set(title="distillation loss (weighted parts)", xlabel="optimizer step", ylabel="loss")
    right.legend()
    return _save(fig, path)


def eval_accuracy(teacher: list[dict], distill: list[dict], path: Path) -> Path:
    """Accuracy on the evaluation split at each evaluation, teacher and student. The x axis is the
    share of each stage's steps: the teacher takes tens of steps, the student hundreds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    lowest = 1.0
    for name, records, color in (("teacher", teacher, "tab:blue"), ("student", distill, "tab:orange")):
        evals = [r for r in records if "eval" in r]
        if evals:
            last = max(r["step"] for r in records) or 1
            accuracy = [r["eval"]["accuracy"] for r in evals]
            lowest = min(lowest, *accuracy)
            ax.plot([r["step"] / last for r in evals], accuracy, marker="o", color=color,
                    label=f"{name} (best {max(accuracy):.3f}, {last} steps)")
    ax.set(title="evaluation accuracy over training", xlabel="share of the stage's optimizer steps",
           ylabel="accuracy", xlim=(0, 1.03), ylim=(max(0.0, lowest - 0.1), 1.01))
    ax.legend(loc="lower right")
    return _save(fig, path)


def confusion(matrix: np.ndarray, labels: list[str], title: str, path: Path) -> Path:
    """Rows: true label; columns: the student's prediction; each cell the count (row share shaded)."""
    plt = _pyplot()
    size = max(4.5, 0.6 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.grid(False)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center",
                    color="white" if shares[i, j] > 0.6 else "black")
    ax.set(title=title, xlabel="predicted", ylabel="true")
    return _save(fig, path)


def recall_bars(teacher: dict[str, float], student: dict[str, float], split: str, path: Path) -> Path:
    """Per-class recall side by side: where the student lost what the teacher knew."""
    plt = _pyplot()
    labels = list(dict.fromkeys([*teacher, *student]))
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(labels) + 2), 4))
    ax.bar(x - 0.2, [teacher.get(k, 0) for k in labels], 0.4, label="teacher", color="tab:blue")
    ax.bar(x + 0.2, [student.get(k, 0) for k in labels], 0.4, label="student", color="tab:orange")
    ax.set_xticks(x, labels, rotation=30 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center")
    ax.set(title=f"per-class recall on the {split} split", ylabel="recall", ylim=(0, 1.22))
    ax.legend(loc="upper center", ncol=2)
    return _save(fig, path)


def learning_rate_curves(curves: dict[str, list[float]], chosen: float | None, path: Path) -> Path:
    """Held-out loss of the simulated on-device update for each candidate learning rate."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for rate, losses in curves.items():
        mark = " (chosen)" if chosen is not None and float(rate) == float(chosen) else ""
        ax.plot(range(len(losses)), losses, marker=".", linewidth=2.5 if mark else 1.2, label=f"lr {rate}{mark}")
    ax.set(title="simulated on-device update: held-out loss", xlabel="epoch", ylabel="loss")
    ax.legend()
    return _save(fig, path)
