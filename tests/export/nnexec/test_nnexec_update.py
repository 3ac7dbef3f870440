"""Simulated on-device update against hand-written PyTorch training of the same head."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch.nn import functional as F

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import coremltools as ct
    from coremltools.models.neural_network import AdamParams, NeuralNetworkBuilder, SgdParams

from export.runtime.neuralnetwork.errors import InputError, UpdateConfigError
from export.runtime.neuralnetwork.pipelines import load_executor
from export.runtime.neuralnetwork.simulate_update import simulate_update
from export.runtime.neuralnetwork.training_config import read_update_config
from tests.helpers.nnexec_helpers import make_builder

E, C = 6, 3
LABELS = ["sport", "weather", "business"]
N = 7  # with mini-batch 3: batches of 3, 3, 1 (the last one partial)


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, E)).astype(np.float32)
    y = rng.integers(0, C, size=N)
    return x, y


def _params(seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(C, E)).astype(np.float32) * 0.5, rng.normal(size=C).astype(np.float32) * 0.1


def dense_head(optimizer, epochs: int = 4, shuffle: bool = False):
    """innerProduct -> softmax -> CE, a classifier with String labels, legacy rank-5 input mapping."""
    w, b = _params()
    nb = make_builder([("embedding", (E,))], outputs=("probs",), rank5=True, mode="classifier")
    nb.add_inner_product("dense", w, b, E, C, True, "embedding", "logits")
    nb.add_softmax("softmax", "logits", "probs")
    nb.set_class_labels(LABELS, predicted_feature_name="label", prediction_blob="probs")
    nb.make_updatable(["dense"])
    with warnings.catch_warnings(), _quiet():
        nb.set_categorical_cross_entropy_loss(name="loss", input="probs")
    if isinstance(optimizer, SgdParams):
        nb.set_sgd_optimizer(optimizer)
    else:
        nb.set_adam_optimizer(optimizer)
    nb.set_epochs(epochs)
    nb.spec.neuralNetworkClassifier.updateParams.shuffle.defaultValue = shuffle
    return nb.spec


class _quiet:
    """coremltools prints 'Now adding input ...' when adding a loss; keep test output clean."""

    def __enter__(self):
        import contextlib
        import io

        self._ctx = contextlib.redirect_stdout(io.StringIO())
        return self._ctx.__enter__()

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _batch(x, y):
    return [{"embedding": x[i], "label": LABELS[int(y[i])]} for i in range(len(x))]


def _torch_train(x, y, step, epochs, batch):
    """Reference: mean CE over each mini-batch, one optimizer step per mini-batch, in order."""
    w0, b0 = _params()
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y)
    losses = []
    for _ in range(epochs):
        per_batch = []
        for s in range(0, len(x), batch):
            loss = F.cross_entropy(xt[s:s + batch] @ w.T + b, yt[s:s + batch])
            w.grad = b.grad = None
            loss.backward()
            with torch.no_grad():
                step(w, b)
            per_batch.append((loss.item(), len(xt[s:s + batch])))
        losses.append(sum(v * n for v, n in per_batch) / len(x))
    return w.detach().numpy(), b.detach().numpy(), losses


def _trained(spec, kind="dense"):
    network = getattr(spec, spec.WhichOneof("Type"))
    layer = next(layer for layer in network.layers if layer.name == kind)
    params = getattr(layer, layer.WhichOneof("layer"))
    return np.array(params.weights.floatValue), np.array(params.bias.floatValue)


def test_sgd_with_momentum_matches_pytorch_and_lowers_the_loss(tmp_path):
    x, y = _data()
    spec = dense_head(SgdParams(lr=0.2, batch=3, momentum=0.5), epochs=4)
    result = simulate_update(spec, _batch(x, y), output_path=tmp_path / "Head.mlmodel")

    velocity = {}

    def sgd(w, b):
        for name, p in (("w", w), ("b", b)):
            velocity[name] = 0.5 * velocity.get(name, torch.zeros_like(p)) + p.grad
            p -= 0.2 * velocity[name]

    w_ref, b_ref, losses_ref = _torch_train(x, y, sgd, epochs=4, batch=3)
    w_new, b_new = _trained(result.spec)
    assert np.abs(w_new.reshape(C, E) - w_ref).max() <= 1e-5
    assert np.abs(b_new - b_ref).max() <= 1e-5
    np.testing.assert_allclose(result.epoch_losses, losses_ref, atol=1e-5)
    assert result.epoch_losses[-1] < result.epoch_losses[0] and result.final_loss < result.initial_loss
    assert [len(e.batch_losses) for e in result.epochs] == [3, 3, 3, 3]

    saved = ct.utils.load_spec(str(tmp_path / "Head.mlmodel"))
    np.testing.assert_array_equal(_trained(saved)[0], w_new)
    assert saved.isUpdatable and saved.neuralNetworkClassifier.layers[0].innerProduct.weights.isUpdatable
    probs = load_executor(saved).predict({"embedding": x[0]})["probs"]
    logits = w_ref @ x[0] + b_ref
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose([probs[label] for label in LABELS], expected, atol=1e-5)


def _adam_reference(lr, b1, b2, eps):
    """Kingma & Ba with the bias correction folded into the step size (Core ML / MPS form)."""
    state = {"t": 0}

    def adam(w, b):
        state["t"] += 1
        t = state["t"]
        for name, p in (("w", w), ("b", b)):
            m = b1 * state.get("m" + name, torch.zeros_like(p)) + (1 - b1) * p.grad
            v = b2 * state.get("v" + name, torch.zeros_like(p)) + (1 - b2) * p.grad ** 2
            state["m" + name], state["v" + name] = m, v
            p -= lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (v.sqrt() + eps)

    return adam


def test_adam_matches_pytorch_reference_and_torch_optim_adam_closely():
    x, y = _data(2)
    spec = dense_head(AdamParams(lr=0.05, batch=3, beta1=0.9, beta2=0.999, eps=1e-8), epochs=3)
    result = simulate_update(spec, _batch(x, y))
    w_ref, b_ref, losses_ref = _torch_train(x, y, _adam_reference(0.05, 0.9, 0.999, 1e-8), epochs=3, batch=3)
    w_new, b_new = _trained(result.spec)
    assert np.abs(w_new.reshape(C, E) - w_ref).max() <= 1e-5
    assert np.abs(b_new - b_ref).max() <= 1e-5
    np.testing.assert_allclose(result.epoch_losses, losses_ref, atol=1e-5)
    assert result.final_loss < result.initial_loss

    w0, b0 = _params()
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05, betas=(0.9, 0.999), eps=1e-8)
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y)
    for _ in range(3):
        for s in range(0, N, 3):
            opt.zero_grad()
            F.cross_entropy(xt[s:s + 3] @ w.T + b, yt[s:s + 3]).backward()
            opt.step()
    assert np.abs(w_new.reshape(C, E) - w.detach().numpy()).max() < 1e-4  # differs only in where eps enters


def test_mse_regressor_matches_pytorch():
    rng = np.random.default_rng(6)
    w, b = rng.normal(size=(2, E)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    from coremltools.models import datatypes

    nb = NeuralNetworkBuilder([("embedding", datatypes.Array(E))], [("score", datatypes.Array(2))],
                              disable_rank5_shape_mapping=True, mode="regressor")
    nb.add_inner_product("dense", w, b, E, 2, True, "embedding", "score")
    nb.make_updatable(["dense"])
    with _quiet():
        nb.set_mean_squared_error_loss("mse", input_feature=("score", datatypes.Array(2)))
    nb.set_sgd_optimizer(SgdParams(lr=0.1, batch=2))
    nb.set_epochs(2)
    nb.spec.neuralNetworkRegressor.updateParams.shuffle.defaultValue = False
    x = rng.normal(size=(4, E)).astype(np.float32)
    t = rng.normal(size=(4, 2)).astype(np.float32)
    result = simulate_update(nb.spec, {"embedding": list(x), "score_true": list(t)})

    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    for _ in range(2):
        for s in (0, 2):
            loss = F.mse_loss(torch.tensor(x[s:s + 2], dtype=torch.float64) @ wt.T + bt,
                              torch.tensor(t[s:s + 2], dtype=torch.float64))
            wt.grad = bt.grad = None
            loss.backward()
            with torch.no_grad():
                wt -= 0.1 * wt.grad
                bt -= 0.1 * bt.grad
    w_new, b_new = _trained(result.spec)
    assert np.abs(w_new - wt.detach().numpy().ravel()).max() <= 1e-5
    assert np.abs(b_new - bt.detach().numpy()).max() <= 1e-5


def test_shuffle_uses_the_seed_reproducibly():
    x, y = _data(7)
    spec = dense_head(SgdParams(lr=0.3, batch=2), epochs=3, shuffle=True)
    first = simulate_update(spec, _batch(x, y), parameters={"seed": 11})
    again = simulate_update(spec, _batch(x, y), parameters={"seed": 11})
    ordered = simulate_update(spec, _batch(x, y), parameters={"shuffle": False})
    assert first.epoch_losses == again.epoch_losses
    assert first.epoch_losses != ordered.epoch_losses


def test_batch_fed_like_ios_is_checked():
    x, y = _data()
    spec = dense_head(SgdParams(lr=0.1, batch=2))
    with pytest.raises(InputError, match=r"shape \(1, 6\) but the model declares \(6,\)"):
        simulate_update(spec, [{"embedding": x[0].reshape(1, E), "label": "sport"}])
    with pytest.raises(InputError, match="class labels are strings; got int 0"):
        simulate_update(spec, [{"embedding": x[0], "label": 0}])
    with pytest.raises(InputError, match="label 'tennis' is not one of"):
        simulate_update(spec, [{"embedding": x[0], "label": "tennis"}])
    with pytest.raises(InputError, match="lacks training inputs \\['label'\\]"):
        simulate_update(spec, [{"embedding": x[0]}])


def test_configs_a_device_would_reject_are_refused():
    spec = dense_head(SgdParams(lr=0.1, batch=2))
    spec.neuralNetworkClassifier.layers[1].softmaxND.axis = -1  # what ct.convert emits instead of 'softmax'
    with pytest.raises(UpdateConfigError, match="comes from layer 'softmax' \\(softmaxND\\).*plain 'softmax'"):
        simulate_update(spec, _batch(*_data()))

    spec = dense_head(SgdParams(lr=0.1, batch=2))
    spec.neuralNetworkClassifier.updateParams.optimizer.sgdOptimizer.learningRate.defaultValue = 3.0
    with pytest.raises(UpdateConfigError, match=r"learningRate default 3.0 is outside its range \[0.0, 1.0\]"):
        read_update_config(spec)

    spec = dense_head(SgdParams(lr=0.1, batch=2))
    spec.neuralNetworkClassifier.updateParams.optimizer.sgdOptimizer.miniBatchSize.defaultValue = 0
    with pytest.raises(UpdateConfigError, match="miniBatchSize default 0 must be > 0"):
        read_update_config(spec)

    spec = dense_head(SgdParams(lr=0.1, batch=2))
    with pytest.raises(UpdateConfigError, match="epochs=5 is not in the model's allowed set"):
        simulate_update(spec, _batch(*_data()), parameters={"epochs": 5})

    spec = dense_head(SgdParams(lr=0.1, batch=2))
    spec.isUpdatable = False
    with pytest.raises(UpdateConfigError, match="not marked isUpdatable"):
        read_update_config(spec)


def test_a_reshape_between_the_updatable_layer_and_the_loss_is_named():
    w, b = _params()
    nb = make_builder([("embedding", (E,))], outputs=("probs",))
    nb.add_inner_product("dense", w, b, E, C, True, "embedding", "logits")
    nb.add_reshape_static("flat", "logits", "logits3", [C, 1, 1])
    nb.add_softmax("softmax", "logits3", "probs")
    nb.make_updatable(["dense"])
    with _quiet():
        nb.set_categorical_cross_entropy_loss("loss", input="probs")
    nb.set_sgd_optimizer(SgdParams(lr=0.1, batch=2))
    nb.set_epochs(1)
    x, y = _data()
    with pytest.raises(UpdateConfigError, match="layer 'flat' \\(reshapeStatic\\) sits between"):
        simulate_update(nb.spec, [{"embedding": x[i], "probs_true": np.array([y[i]], np.int32)} for i in range(N)])


def test_updatable_pipeline_trains_only_its_last_model_on_frozen_features(tmp_path):
    """Encoder-like frozen stage (tokens (1, 4) -> tanh(dense) -> (E,)) + the updatable dense head."""
    from coremltools.models import datatypes
    from coremltools.models.pipeline import PipelineClassifier

    rng = np.random.default_rng(8)
    w_enc = rng.normal(size=(E, 4)).astype(np.float32)
    encoder = make_builder([("tokens", (1, 4))], outputs=("embedding",))
    encoder.add_inner_product("enc", w_enc, None, 4, E, False, "tokens", "h")
    encoder.add_reshape_static("flat", "h", "h1", [E])
    encoder.add_activation("enc_tanh", "TANH", "h1", "embedding")
    encoder.spec.description.output[0].type.multiArrayType.shape.extend([E])
    head = dense_head(SgdParams(lr=0.2, batch=3), epochs=2)
    pipe = PipelineClassifier([("tokens", datatypes.Array(1, 4))], LABELS, output_features=["label", "probs"],
                              training_features=[("tokens", datatypes.Array(1, 4)), ("label", datatypes.String())])
    pipe.add_model(encoder.spec)
    pipe.add_model(head)
    pipe.make_updatable()
    spec = pipe.spec
    spec.specificationVersion = max(spec.specificationVersion, 4)
    ct.utils.convert_double_to_float_multiarray_type(spec)

    tokens = rng.normal(size=(N, 1, 4)).astype(np.float32)
    _, y = _data(9)
    result = simulate_update(spec, [{"tokens": tokens[i], "label": LABELS[y[i]]} for i in range(N)],
                             output_path=tmp_path / "Pipeline.mlmodel")
    assert result.trained == "pipeline stage 1"

    features = np.tanh(tokens[:, 0] @ w_enc.T)
    w_ref, b_ref, losses_ref = _torch_train(features, y, lambda w, b: (w.sub_(0.2 * w.grad), b.sub_(0.2 * b.grad)),
                                            epochs=2, batch=3)
    stages = result.spec.pipelineClassifier.pipeline.models
    w_new, b_new = _trained(stages[1])
    assert np.abs(w_new.reshape(C, E) - w_ref).max() <= 1e-5 and np.abs(b_new - b_ref).max() <= 1e-5
    np.testing.assert_allclose(result.epoch_losses, losses_ref, atol=1e-5)
    np.testing.assert_array_equal(stages[0].neuralNetwork.layers[0].innerProduct.weights.floatValue, w_enc.ravel())
    reloaded = load_executor(str(tmp_path / "Pipeline.mlmodel"))
    probs = reloaded.predict({"tokens": tokens[0]})["probs"]
    logits = w_ref @ features[0] + b_ref
    np.testing.assert_allclose([probs[k] for k in LABELS], np.exp(logits) / np.exp(logits).sum(), atol=1e-5)
    with pytest.raises(InputError, match=r"'tokens': shape \(4,\) but the model declares \(1, 4\)"):
        simulate_update(spec, [{"tokens": tokens[0, 0], "label": "sport"}])


def test_held_out_examples_are_scored_before_and_after_every_epoch_but_never_trained_on():
    x, y = _data()
    held_x, held_y = _data(seed=5)
    spec = dense_head(SgdParams(lr=0.1, batch=8), epochs=3)
    with_held = simulate_update(spec, _batch(x, y), held_out=_batch(held_x[:6], held_y[:6]))
    without = simulate_update(spec, _batch(x, y))
    assert len(with_held.held_out_losses) == 4 and without.held_out_losses == ()
    for got, want in zip(_trained(with_held.spec), _trained(without.spec)):
        np.testing.assert_allclose(got, want)  # scoring changes nothing
    w, b = _params()
    logits = held_x[:6].astype(np.float64) @ w.T + b
    expected = float(F.cross_entropy(torch.tensor(logits), torch.tensor(held_y[:6])))
    assert with_held.held_out_losses[0] == pytest.approx(expected, rel=1e-6)  # the untrained head's loss
