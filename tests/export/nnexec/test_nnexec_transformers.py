"""End to end: random transformers BERT / MobileBERT classifiers -> ct.convert(neuralnetwork) -> executor.

The wrapper takes int ``input_ids`` / ``attention_mask`` and builds the 4-D additive mask itself
(transformers' MobileBERT mask helper uses ``new_ones(dtype=bool)``, which coremltools 9.0 cannot
convert). Weights are re-drawn with std 0.3 so the probabilities are far from uniform and a 1e-4
parity budget means something.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
ct = pytest.importorskip("coremltools")

from export.runtime.neuralnetwork.pipelines import load_executor  # noqa: E402

L = 12
LABELS = ["neg", "pos", "neutral"]
PARITY = 1e-4


class MaskedClassifier(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, mask_value: float = float(torch.finfo(torch.float32).min)) -> None:
        super().__init__()
        self.model = model
        self.mask_value = mask_value

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        additive = (1.0 - attention_mask[:, None, None, :].float()) * self.mask_value
        return torch.softmax(self.model(input_ids=input_ids, attention_mask=additive).logits, dim=-1)


def _random_model(kind: str, seed: int, nonorm_scale: float = 1.0, mask_value: float = -3.4028234663852886e38
                  ) -> torch.nn.Module:
    torch.manual_seed(seed)
    common = dict(vocab_size=90, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=32,
                  num_labels=3, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    if kind == "bert":
        model = transformers.BertForSequenceClassification(
            transformers.BertConfig(hidden_size=32, intermediate_size=48, **common))
    else:
        model = transformers.MobileBertForSequenceClassification(transformers.MobileBertConfig(
            hidden_size=32, embedding_size=16, intra_bottleneck_size=16, intermediate_size=24,
            num_feedforward_networks=2, **common))
    model.config._attn_implementation = "eager"
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1.0 + 0.1 * noise if "LayerNorm.weight" in name else 0.3 * noise)
            if "LayerNorm.weight" in name:
                p.mul_(nonorm_scale)  # MobileBERT's NoNorm: a learned scale, what makes real ones overflow
    return MaskedClassifier(model.eval(), mask_value).eval()


def _convert(module: torch.nn.Module, classifier: bool):
    ids = torch.randint(0, 90, (1, L))
    mask = torch.ones(1, L, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, (ids, mask), strict=False)
        return ct.convert(
            traced, convert_to="neuralnetwork",
            inputs=[ct.TensorType(name="input_ids", shape=(1, L), dtype=np.int32),
                    ct.TensorType(name="attention_mask", shape=(1, L), dtype=np.int32)],
            classifier_config=ct.ClassifierConfig(LABELS) if classifier else None)


def _batches(seed: int):
    gen = np.random.default_rng(seed)
    for length in (L, 7, 2):
        ids = gen.integers(3, 90, size=(1, L)).astype(np.int32)
        mask = np.zeros((1, L), dtype=np.int32)
        mask[0, :length] = 1
        ids[0, length:] = 0
        yield ids, mask


@pytest.fixture(scope="module")
def bert():
    module = _random_model("bert", seed=1)
    return module, _convert(module, classifier=False)


@pytest.fixture(scope="module")
def mobilebert():
    module = _random_model("mobilebert", seed=2)
    return module, _convert(module, classifier=True)


def test_bert_probabilities_match_pytorch(bert):
    module, mlmodel = bert
    executor = load_executor(mlmodel)
    (out_name,) = [o.name for o in mlmodel.get_spec().description.output]
    worst = 0.0
    for ids, mask in _batches(3):
        probs = executor.predict({"input_ids": ids, "attention_mask": mask})[out_name]
        ref = module(torch.from_numpy(ids).long(), torch.from_numpy(mask).long()).detach().numpy()
        assert probs.shape == ref.shape == (1, 3)
        assert np.ptp(ref) > 0.1  # not a near-uniform output that any executor would match
        worst = max(worst, float(np.abs(probs - ref).max()))
    assert worst <= PARITY, worst


def test_mobilebert_classifier_outputs_label_and_probability_dict(mobilebert):
    module, mlmodel = mobilebert
    spec = mlmodel.get_spec()
    executor = load_executor(mlmodel)
    worst = 0.0
    for ids, mask in _batches(4):
        out = executor.predict({"input_ids": ids, "attention_mask": mask})
        probs = out[spec.description.predictedProbabilitiesName]
        ref = module(torch.from_numpy(ids).long(), torch.from_numpy(mask).long()).detach().numpy()[0]
        assert list(probs) == LABELS
        worst = max(worst, max(abs(probs[label] - ref[i]) for i, label in enumerate(LABELS)))
        assert out[spec.description.predictedFeatureName] == LABELS[int(np.argmax(ref))]
    assert worst <= PARITY, worst


def test_mobilebert_conversion_uses_the_layers_we_claim(mobilebert):
    kinds = {layer.WhichOneof("layer") for layer in mobilebert[1].get_spec().neuralNetworkClassifier.layers}
    assert {"embeddingND", "slice", "padding", "concatND", "batchedMatmul", "softmaxND"} <= kinds


def test_intermediates_expose_every_blob(bert):
    _, mlmodel = bert
    spec = mlmodel.get_spec()
    ids, mask = next(_batches(5))
    blobs = load_executor(mlmodel).intermediates({"input_ids": ids, "attention_mask": mask})
    produced = {out for layer in spec.neuralNetwork.layers for out in layer.output}
    assert produced | {"input_ids", "attention_mask"} == set(blobs)
    embedding = next(layer for layer in spec.neuralNetwork.layers if layer.WhichOneof("layer") == "embeddingND")
    assert blobs[embedding.output[0]].shape == (1, L, 32)


def test_fp16_report_flags_the_float32_min_attention_mask(bert):
    """(1 - mask) * finfo(float32).min is -inf in fp16: the report must point at that layer."""
    from export.runtime.neuralnetwork.fp16_emulation import fp16_report

    _, mlmodel = bert
    padded = [{"input_ids": ids, "attention_mask": mask} for ids, mask in _batches(6) if mask.min() == 0]
    report = fp16_report(mlmodel, padded)
    layers = {layer.name: layer for layer in mlmodel.get_spec().neuralNetwork.layers}
    first = layers[report.first_overflow_layer.split(" ")[0]]
    assert first.WhichOneof("layer") == "multiply" and first.multiply.alpha < -1e38
    assert not report.safe


def test_fp16_report_finds_mobilebert_nonorm_overflow():
    from export.runtime.neuralnetwork.fp16_emulation import fp16_report

    module = _random_model("mobilebert", seed=5, nonorm_scale=40.0, mask_value=-10000.0)
    mlmodel = _convert(module, classifier=False)
    samples = [{"input_ids": ids, "attention_mask": mask} for ids, mask in _batches(7)]
    (out_name,) = [o.name for o in mlmodel.get_spec().description.output]
    executor = load_executor(mlmodel)
    for sample in samples:  # fp32 stays exact: the problem is fp16-only
        ref = module(torch.from_numpy(sample["input_ids"]).long(), torch.from_numpy(sample["attention_mask"]).long())
        np.testing.assert_allclose(executor.predict(sample)[out_name], ref.detach().numpy(), atol=PARITY, rtol=0)
    report = fp16_report(mlmodel, samples)
    assert report.max_abs_activation > 65504
    assert report.first_overflow_layer is not None and not report.safe
    first = report.first_overflow_layer.split(" ")[0]
    index = [layer.name for layer in report.layers].index(first)
    assert all(layer.max_abs_fp32 <= 65504 for layer in report.layers[:index])
    assert report.layers[index].max_abs_fp32 > 65504
