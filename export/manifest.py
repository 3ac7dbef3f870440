"""``manifest.json``: the contract an iOS developer wires to.

Per file: inputs/outputs (names, shapes, dtypes) read back from the saved spec (``describe_spec``,
which ``export.check``'s shape check reuses), plus max length, labels, tokenizer (vocab copied
beside it) and update parameters. Reading the saved files rather than restating intentions means
the manifest cannot drift from what Core ML enforces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import coremltools as ct
from coremltools.proto import FeatureTypes_pb2, MIL_pb2, Model_pb2

from export.updatable.params import last_model, read_update_params

MANIFEST_FORMAT = "mlx_distill.export/1"
MANIFEST_NAME = "manifest.json"


def describe_saved_model(path: Path) -> dict[str, Any]:
    """Reload a saved .mlpackage / .mlmodel without compiling it and describe its interface."""
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    return describe_spec(spec)


def build_manifest(*, model_type: str, labels: list[str], max_length: int, embedding_size: int,
                   tokenizer: Mapping[str, Any], precision: Mapping[str, Any],
                   files: Mapping[str, Path], extra: Mapping[str, Mapping[str, Any]],
                   skipped: Mapping[str, str], versions: Mapping[str, str],
                   source_model_dir: Optional[str] = None) -> dict[str, Any]:
    """Assemble the manifest; ``files`` maps a role (classifier, encoder, ...) to its saved path.

    ``source_model_dir`` (relative to the export folder) is the Hugging Face folder exported; ``python -m export.check``
    reloads the PyTorch shell from it for parity checks.
    """
    models: dict[str, Any] = {}
    for role, path in files.items():
        entry = {"file": path.name, **describe_saved_model(path)}
        entry.update(extra.get(role, {}))
        models[role] = entry
    return {
        "format": MANIFEST_FORMAT,
        "model_type": model_type,
        "source_model_dir": source_model_dir,
        "max_length": max_length,
        "labels": list(labels),
        "num_labels": len(labels),
        "embedding_size": embedding_size,
        "tokenizer": dict(tokenizer),
        "precision": dict(precision),
        "models": models,
        "skipped": dict(skipped),
        "wiring": _wiring(files, max_length, embedding_size),
        "versions": dict(versions),
    }


def _wiring(files: Mapping[str, Path], max_length: int, embedding_size: int) -> list[str]:
    steps = [
        f"Tokenize with the manifest's tokenizer, pad/truncate to exactly {max_length} tokens: "
        f"input_ids and attention_mask as MLMultiArray of shape [1, {max_length}].",
    ]
    if "classifier" in files:
        steps.append(f"{files['classifier'].name}: int32 inputs -> 'label' (String) and 'label_probs' ([String: Double]).")
    if "encoder" in files:
        steps.append(f"{files['encoder'].name}: int32 inputs -> 'pooled_embedding' Float32 of shape [{embedding_size}].")
    if "updatable_head" in files:
        steps.append(
            f"{files['updatable_head'].name}: pass the Encoder's 'pooled_embedding' unchanged (shape [{embedding_size}], "
            "not [1, E]); train with MLUpdateTask on the compiled .mlmodelc using feature providers holding "
            "'pooled_embedding' and the correct 'label' String; write the updated model to Application Support or "
            "Documents, never into the app bundle."
        )
    if "updatable_pipeline" in files:
        steps.append(
            f"{files['updatable_pipeline'].name}: single file; input_ids/attention_mask are Float32 [1, {max_length}] "
            "(NeuralNetwork has no int32 arrays); training inputs add 'label' (String)."
        )
    return steps


# --- a saved spec's interface ---------------------------------------------------------------------

_ARRAY_DTYPES = {
    FeatureTypes_pb2.ArrayFeatureType.FLOAT32: "float32",
    FeatureTypes_pb2.ArrayFeatureType.DOUBLE: "float64",
    FeatureTypes_pb2.ArrayFeatureType.INT32: "int32",
    FeatureTypes_pb2.ArrayFeatureType.FLOAT16: "float16",
}


def feature_dict(feature: Model_pb2.FeatureDescription) -> dict[str, Any]:
    """name + Core ML type (+ shape/dtype for multi-arrays, key type for dictionaries)."""
    kind = feature.type.WhichOneof("Type")
    out: dict[str, Any] = {"name": feature.name}
    if feature.shortDescription:
        out["description"] = feature.shortDescription
    if kind == "multiArrayType":
        array = feature.type.multiArrayType
        out.update(type="multiArray", dtype=_ARRAY_DTYPES.get(array.dataType, str(array.dataType)),
                   shape=[int(d) for d in array.shape])
    elif kind == "dictionaryType":
        key = feature.type.dictionaryType.WhichOneof("KeyType")
        out.update(type="dictionary", key_type="string" if key == "stringKeyType" else "int64", value_type="double")
    elif kind == "stringType":
        out.update(type="string")
    elif kind == "int64Type":
        out.update(type="int64")
    elif kind == "doubleType":
        out.update(type="double")
    else:
        out.update(type=str(kind))
    return out


def model_format(spec: Model_pb2.Model) -> str:
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        return "mlprogram"
    if kind in ("pipeline", "pipelineClassifier", "pipelineRegressor"):
        return "pipeline"
    return "neuralnetwork"


def mlprogram_compute_precision(spec: Model_pb2.Model) -> Optional[str]:
    """'fp16' if any op of an ML Program produces fp16 tensors, else 'fp32'; None for other types."""
    if spec.WhichOneof("Type") != "mlProgram":
        return None
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                for output in op.outputs:
                    if output.type.WhichOneof("type") == "tensorType" and \
                            output.type.tensorType.dataType == MIL_pb2.DataType.FLOAT16:
                        return "fp16"
    return "fp32"


def class_labels(spec: Model_pb2.Model) -> Optional[list]:
    """Class labels in index order: NN classifier label vectors, an ML Program's ``classify`` op,
    or a pipeline's last model."""
    spec = last_model(spec)
    kind = spec.WhichOneof("Type") if spec is not None else None
    if kind == "neuralNetworkClassifier":
        nn = spec.neuralNetworkClassifier
        return list(nn.stringClassLabels.vector) or [int(v) for v in nn.int64ClassLabels.vector]
    if kind == "mlProgram":
        for function in spec.mlProgram.functions.values():
            for block in function.block_specializations.values():
                for op in block.operations:
                    if op.type != "classify":
                        continue
                    values = op.inputs["classes"].arguments[0].value.immediateValue.list.values
                    out = []
                    for value in values:
                        tensor = value.immediateValue.tensor
                        out.extend(tensor.strings.values or [int(v) for v in tensor.longInts.values])
                    return out
    return None


def describe_spec(spec: Model_pb2.Model) -> dict[str, Any]:
    """Interface summary: format, spec version, inputs/outputs/training inputs, classifier names."""
    description = spec.description
    out: dict[str, Any] = {
        "format": model_format(spec),
        "specification_version": int(spec.specificationVersion),
        "is_updatable": bool(spec.isUpdatable),
        "inputs": [feature_dict(f) for f in description.input],
        "outputs": [feature_dict(f) for f in description.output],
    }
    if description.predictedFeatureName:
        out["predicted_feature"] = description.predictedFeatureName
        out["predicted_probabilities"] = description.predictedProbabilitiesName
        out["class_labels"] = class_labels(spec)
    if description.trainingInput:
        out["training_inputs"] = [feature_dict(f) for f in description.trainingInput]
    precision = mlprogram_compute_precision(spec)
    if precision:
        out["compute_precision"] = precision
    last = last_model(spec)
    update = read_update_params(last) if last is not None and last.isUpdatable else None
    if update is not None:
        out["update"] = update.as_manifest()
    return out
