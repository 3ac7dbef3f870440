"""Check 5, simulated on-device update: does the updatable model actually learn?

``export.runtime.neuralnetwork.simulate_update.simulate_update`` trains a copy of each updatable model the way
``MLUpdateTask`` would, with the model's own loss, optimizer, mini-batch size and epochs (or
``CheckConfig.update_epochs``). The batch is built exactly as the app would build it - the
manifest's training-input names, shapes and label type - from the check texts: the head gets the
encoder's pooled embeddings, the pipeline the token arrays. Targets are each model's current
predictions rotated by one class, so there is something to learn; the loss must go down. The
exported file is never touched (nothing is written).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from export.check.context import CheckContext, Unavailable, describe_exception
from export.check.updatable_lint import updatable_roles
from export.check.report import CheckResult
from export.check.runners import feed

NAME = "simulated-update"


def _target_value(feature: dict, label: Any) -> Any:
    kind = feature.get("type")
    if kind == "string":
        return str(label)
    if kind == "int64":
        return int(label)
    raise ValueError(f"training input {feature['name']!r} of type {kind!r}: expected the class label (String or Int64)")


def _batch(ctx: CheckContext, role: str) -> tuple[list[dict], list, dict]:
    """Examples by the manifest's training inputs, targets = current predictions rotated by one."""
    entry = ctx.entry(role)
    labels = list(entry.get("class_labels") or ctx.labels)
    model_inputs = {f["name"] for f in entry.get("inputs", [])}
    training = entry.get("training_inputs") or []
    if not training:
        raise ValueError(f"{entry.get('file', role)}: the manifest lists no training inputs")
    tokens = ctx.tokens()
    runner = ctx.runner(role)
    if role == "updatable_head":
        pooled = ctx.head_encoder().pooled(tokens.input_ids, tokens.attention_mask)
        values = [{entry["inputs"][0]["name"]: row} for row in pooled]
        current = runner.run_embeddings(pooled)
        source = ctx.head_encoder().name
    else:
        values = [{"input_ids": ids, "attention_mask": mask} for ids, mask in zip(tokens.input_ids, tokens.attention_mask)]
        current = runner.run(tokens.input_ids, tokens.attention_mask)
        source = "the check texts' tokens"
    now = [int(np.argmax(p)) for p in current.probabilities]
    targets = [labels[(i + 1) % len(labels)] for i in now]
    arrays = [f for f in training if f["name"] in model_inputs]
    target_features = [f for f in training if f["name"] not in model_inputs]
    if len(target_features) != 1:
        raise ValueError(f"{entry.get('file', role)}: expected exactly one training input beyond the model inputs "
                         f"(the label), the manifest lists {[f['name'] for f in target_features]}")
    examples = []
    for value, target in zip(values, targets):
        example = feed(arrays, value, entry.get("file", role))
        example[target_features[0]["name"]] = _target_value(target_features[0], target)
        examples.append(example)
    return examples, targets, {"inputs_from": source, "label_feature": target_features[0]["name"],
                               "predicted_before": [labels[i] for i in now]}


def _hits(ctx: CheckContext, role: str, spec, examples: list, targets: list, label_feature: str) -> int:
    from export.runtime.neuralnetwork.pipelines import load_executor

    executor = load_executor(spec)
    predicted = executor.spec.description.predictedFeatureName
    hits = 0
    for example, target in zip(examples, targets):
        out = executor.predict({k: v for k, v in example.items() if k != label_feature})
        hits += out.get(predicted) == target
    return hits


def check_update(ctx: CheckContext) -> CheckResult:
    from export.runtime.neuralnetwork.simulate_update import simulate_update

    try:
        roles = updatable_roles(ctx)
    except Unavailable as exc:
        return CheckResult(NAME, None, str(exc))
    if not roles:
        return CheckResult(NAME, None, "this export has no updatable model")
    details: dict[str, Any] = {"files": {}, "examples": len(ctx.config.check_texts)}
    failures, skipped, summaries = [], [], []
    parameters = {"epochs": ctx.config.update_epochs} if ctx.config.update_epochs else None
    for role in roles:
        name = ctx.file_name(role)
        try:
            spec = ctx.spec(role)
            examples, targets, info = _batch(ctx, role)
        except Unavailable as exc:
            skipped.append(f"{name}: {exc}")
            details["files"][name] = {"skipped": str(exc)}
            continue
        except Exception as exc:
            failures.append(str(exc) if name in str(exc) else f"{name}: {describe_exception(exc)}")
            details["files"][name] = {"error": describe_exception(exc)}
            continue
        try:
            result = simulate_update(spec, examples, parameters=parameters, output_path=None)
        except Exception as exc:
            failures.append(f"{name}: the simulated update failed: {describe_exception(exc)}")
            details["files"][name] = {"error": describe_exception(exc), **info}
            continue
        record = {**result.as_dict(), **info, "targets": targets}
        record["targets_hit_after"] = _hits(ctx, role, result.spec, examples, targets, info["label_feature"])
        losses = [result.initial_loss, *result.epoch_losses, result.final_loss]
        finite = bool(np.isfinite(losses).all())
        record["passed"] = finite and result.final_loss < result.initial_loss
        details["files"][name] = record
        trail = " -> ".join(f"{x:.4g}" for x in result.epoch_losses)
        summary = (f"{name} loss {result.initial_loss:.4g} -> {result.final_loss:.4g} over {len(result.epochs)} epoch(s) "
                   f"[{trail}], {record['targets_hit_after']}/{len(targets)} rotated labels learnt")
        if record["passed"]:
            summaries.append(summary)
        else:
            failures.append(f"{name}: loss did not go down ({summary})" if finite else f"{name}: non-finite loss ({summary})")
    if failures:
        return CheckResult(NAME, False, "; ".join(failures), details)
    if not summaries:
        return CheckResult(NAME, None, "; ".join(skipped), details)
    return CheckResult(NAME, True, "; ".join(summaries + [f"skipped {s}" for s in skipped]), details)
