"""Every op / layer kind our export can write is one the NumPy runtimes implement (emitted ⊆ supported).

Each BERT activation and each MobileBERT switch is converted exactly as ``export_folder`` converts it
(the Classifier ML Program in fp32 and fp16, the NeuralNetwork encoder of the updatable pipeline);
the updatable head is the exporter's own builder. The ML Program is executed by export.runtime.mlprogram
and must match the PyTorch shell, so "supported" means "runs and gives the right numbers".
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest
import torch

from tests.helpers.export_test_utils import MAX_LENGTH, WORDS, bert_config, mobilebert_config, padded_batch, scramble
from export.convert.coreml import convert_classifier, convert_encoder_neuralnetwork
from export.runtime.mlprogram.interpreter import MLProgramExecutor
from export.runtime.mlprogram.ops import supported_ops
from export.runtime.neuralnetwork.layers_elementwise import ACTIVATIONS
from export.runtime.neuralnetwork.registry import supported_layer_types
from export.shell import build_shell
from export.shell.common import SUPPORTED_ACTIVATIONS
from tests.export.test_export_shell import MOBILEBERT_VARIANTS

VARIANTS = {**{f"bert-{act}": (bert_config(hidden_act=act), ("fp32",)) for act in SUPPORTED_ACTIVATIONS},
            **{f"mobilebert-{name}": (mobilebert_config(**kw), ("fp32", "fp16")) for name, kw in MOBILEBERT_VARIANTS.items()}}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_emitted_op_and_layer_is_supported(variant, tmp_path):
    config, precisions = VARIANTS[variant]
    shell = build_shell(config.to_dict(), MAX_LENGTH).eval()
    scramble(shell, 0)
    ids, mask = padded_batch(len(WORDS), [MAX_LENGTH, 5])
    with torch.no_grad():
        want = torch.softmax(shell(ids, mask).double(), -1).numpy()
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        for precision in precisions:
            model = convert_classifier(shell, ["a", "b", "c"], MAX_LENGTH, precision)
            package = tmp_path / f"{precision}.mlpackage"
            model.save(str(package))
            executor = MLProgramExecutor(package)  # raises UnsupportedOpError naming any op outside the set
            assert set(executor.program.op_types()) <= set(supported_ops())
            got = np.array([[executor.predict({"input_ids": i[None].numpy().astype(np.int32),
                                               "attention_mask": m[None].numpy().astype(np.int32)})["label_probs"][c]
                             for c in "abc"] for i, m in zip(ids, mask)])
            assert np.abs(got - want).max() <= (1e-4 if precision == "fp32" else 0.05), (variant, precision)
        network = convert_encoder_neuralnetwork(shell, MAX_LENGTH, shell.pooled_size if hasattr(shell, "pooled_size")
                                                else config.hidden_size, fp16_safe=False)
    emitted = {layer.WhichOneof("layer") for layer in network.neuralNetwork.layers}
    assert emitted <= set(supported_layer_types()), emitted - set(supported_layer_types())
    kinds = {layer.activation.WhichOneof("NonlinearityType") for layer in network.neuralNetwork.layers
             if layer.WhichOneof("layer") == "activation"}
    assert kinds <= set(ACTIVATIONS), kinds - set(ACTIVATIONS)


def test_the_updatable_head_uses_only_supported_layers(bert_export):
    import coremltools as ct

    spec = ct.utils.load_spec(str(bert_export.files["updatable_head"]))
    layers = {layer.WhichOneof("layer") for layer in spec.neuralNetworkClassifier.layers}
    assert layers == {"innerProduct", "softmax"} and layers <= set(supported_layer_types())
    losses = {loss.WhichOneof("LossLayerType") for loss in spec.neuralNetworkClassifier.updateParams.lossLayers}
    assert losses == {"categoricalCrossEntropyLossLayer"}
