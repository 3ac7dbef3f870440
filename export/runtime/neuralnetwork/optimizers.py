"""SGD (with momentum) and Adam steps on the flat weight arrays of updatable layers.

SGD with momentum: v <- momentum * v + g ; w <- w - lr * v. This is PyTorch's form; Apple's MPS
form (v <- momentum * v + lr * g ; w <- w - v) is the same sequence of weights at a constant
learning rate, which is all Core ML's update task uses.

Adam: Core ML does not publish its variant; we use Kingma & Ba's (also MPS's and TensorFlow's):
lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t), w <- w - lr_t * m / (sqrt(v) + eps), t counting
mini-batch steps from 1. It differs from PyTorch's Adam only in where eps enters (~eps / sqrt(v)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from export.runtime.neuralnetwork.training_config import AdamConfig, SgdConfig


@dataclass
class SgdState:
    config: SgdConfig
    velocity: dict = field(default_factory=dict)

    def step(self, key: tuple, w: np.ndarray, g: np.ndarray) -> np.ndarray:
        lr, mu = self.config.learning_rate, self.config.momentum
        if mu:
            v = mu * self.velocity.get(key, np.zeros_like(g)) + g
            self.velocity[key] = v
        else:
            v = g
        return w - lr * v


@dataclass
class AdamState:
    config: AdamConfig
    m: dict = field(default_factory=dict)
    v: dict = field(default_factory=dict)
    t: dict = field(default_factory=dict)

    def step(self, key: tuple, w: np.ndarray, g: np.ndarray) -> np.ndarray:
        c = self.config
        t = self.t.get(key, 0) + 1
        m = c.beta1 * self.m.get(key, np.zeros_like(g)) + (1 - c.beta1) * g
        v = c.beta2 * self.v.get(key, np.zeros_like(g)) + (1 - c.beta2) * g * g
        self.t[key], self.m[key], self.v[key] = t, m, v
        lr_t = c.learning_rate * math.sqrt(1 - c.beta2 ** t) / (1 - c.beta1 ** t)
        return w - lr_t * m / (np.sqrt(v) + c.eps)


OptimizerState = Union[SgdState, AdamState]


def optimizer_state(config: Union[SgdConfig, AdamConfig]) -> OptimizerState:
    return SgdState(config) if isinstance(config, SgdConfig) else AdamState(config)
