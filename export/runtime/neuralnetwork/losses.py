"""The two losses Core ML trains with, per example, with their gradients.

Categorical cross-entropy is fused with the softmax that must feed it (the validator demands a
plain ``softmax`` layer there): d loss / d logits = p - onehot(target), which is exact and avoids
dividing by a probability that may underflow to 0. The mini-batch loss is the mean of these
per-example losses (NeuralNetwork.proto: ``Loss = -log(input[target])`` per example).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.runtime.neuralnetwork.errors import InputError

#: Probabilities are clamped here before the log so a saturated softmax gives a large finite loss.
LOG_FLOOR = 1e-12


@dataclass(frozen=True)
class LossValue:
    loss: float
    grad: np.ndarray  # w.r.t. the softmax input (CE) or the loss input (MSE), shaped like that blob


def cross_entropy(probabilities: np.ndarray, target: int, logits_shape: tuple) -> LossValue:
    """-log p[target], and its gradient w.r.t. the logits feeding the softmax."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if not 0 <= target < p.size:
        raise InputError(f"class index {target} is outside [0, {p.size - 1}]")
    loss = -float(np.log(max(p[target], LOG_FLOOR)))
    grad = p.copy()
    grad[target] -= 1.0
    return LossValue(loss, grad.reshape(logits_shape))


def mean_squared_error(prediction: np.ndarray, target: np.ndarray) -> LossValue:
    """mean((y - t)^2) over the elements of one example, and its gradient w.r.t. y.

    Core ML does not document whether its MSE averages or sums over elements; we average (the
    usual definition). With a single output element the two coincide.
    """
    y = np.asarray(prediction, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if t.size != y.size:
        raise InputError(f"MSE target has {t.size} values, the prediction {y.size}")
    diff = y - t.reshape(y.shape)
    return LossValue(float(np.mean(diff ** 2)), 2.0 * diff / diff.size)
