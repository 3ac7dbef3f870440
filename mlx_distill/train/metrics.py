"""Classification metrics computed with NumPy from predictions (no sklearn dependency)."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def classification_metrics(logits: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, object]:
    """accuracy, macro-F1 and per-class recall. Macro-F1 averages over every class that occurs in the
    labels *or* the predictions (as scikit-learn does), so predicting absent classes is penalised."""
    predicted = logits.argmax(axis=-1)
    accuracy = float((predicted == labels).mean()) if len(labels) else 0.0
    recall: dict[str, float] = {}
    f1s: list[float] = []
    for c, name in enumerate(names):
        true_c, pred_c = labels == c, predicted == c
        if not (true_c.any() or pred_c.any()):
            continue
        tp = float((true_c & pred_c).sum())
        rec = tp / true_c.sum() if true_c.any() else 0.0
        prec = tp / pred_c.sum() if pred_c.any() else 0.0
        if true_c.any():
            recall[name] = rec
        f1s.append(0.0 if rec + prec == 0 else 2 * rec * prec / (rec + prec))
    return {"accuracy": accuracy, "macro_f1": float(np.mean(f1s)) if f1s else 0.0, "recall": recall}


def agreement_metrics(student_logits: np.ndarray, teacher_logits: np.ndarray) -> dict[str, float]:
    """How closely the student follows the teacher: argmax agreement and mean KL(teacher || student)."""
    agree = float((student_logits.argmax(-1) == teacher_logits.argmax(-1)).mean())
    t, s = log_softmax(teacher_logits.astype(np.float64)), log_softmax(student_logits.astype(np.float64))
    kl = float((np.exp(t) * (t - s)).sum(-1).mean())
    return {"teacher_agreement": agree, "teacher_kl": kl}
