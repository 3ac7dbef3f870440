"""Check 1, shape: every model file's interface is exactly what the manifest tells the iOS side.

The manifest was generated from the saved specs, so any difference means a file was replaced,
edited or corrupted after export (or the manifest was). Each file is re-described with the same
``describe_spec`` the exporter used and compared field by field; then the wiring the app relies on
is checked across files: token inputs [1, max_length], Encoder output == head input (the seed's
"(1, 768) vs (768)" trap), the labels, and the tokenizer files.
"""

from __future__ import annotations

from typing import Any

from export.check.context import CheckContext, Unavailable
from export.check.report import CheckResult
from export.manifest import describe_spec

NAME = "shape"
#: manifest keys that describe decisions rather than the spec itself
_MANIFEST_ONLY = {"file", "recommended_compute_units", "why"}


def _label(item: Any, index: int) -> str:
    return f"[{item['name']}]" if isinstance(item, dict) and "name" in item else f"[{index}]"


def differences(manifest: Any, model: Any, path: str = "") -> list[str]:
    """Human-readable field paths where the manifest's description differs from the model's."""
    if isinstance(model, dict) and isinstance(manifest, dict):
        out = []
        for key, value in model.items():
            where = f"{path}.{key}" if path else key
            if key not in manifest:
                out.append(f"{where}: missing from the manifest (model has {value!r})")
            else:
                out.extend(differences(manifest[key], value, where))
        for key in manifest:
            if key not in model and key not in _MANIFEST_ONLY:
                where = f"{path}.{key}" if path else key
                out.append(f"{where}: in the manifest ({manifest[key]!r}) but not in the model")
        return out
    if isinstance(model, list) and isinstance(manifest, list) and any(isinstance(x, dict) for x in model + manifest):
        if len(model) != len(manifest):
            return [f"{path}: manifest lists {len(manifest)} ({[_label(m, i) for i, m in enumerate(manifest)]}) "
                    f"but the model has {len(model)} ({[_label(m, i) for i, m in enumerate(model)]})"]
        out = []
        for i, (a, b) in enumerate(zip(manifest, model)):
            out.extend(differences(a, b, f"{path}{_label(b, i)}"))
        return out
    if isinstance(model, float) and isinstance(manifest, (int, float)) and not isinstance(manifest, bool):
        return [] if abs(model - manifest) <= 1e-12 * max(1.0, abs(model)) else [f"{path}: manifest {manifest!r} vs model {model!r}"]
    return [] if manifest == model else [f"{path}: manifest {manifest!r} vs model {model!r}"]


def _feature(entry: dict, key: str, name: str):
    return next((f for f in entry.get(key, []) if f.get("name") == name), None)


def _wiring(manifest: dict, described: dict) -> list[str]:
    """Cross-file rules, checked on the files' own descriptions."""
    out = []
    length, labels = int(manifest["max_length"]), list(manifest["labels"])
    embedding = int(manifest["embedding_size"])
    if int(manifest.get("num_labels", len(labels))) != len(labels):
        out.append(f"manifest.json: num_labels {manifest['num_labels']} but {len(labels)} labels")
    files = {role: manifest["models"][role].get("file", role) for role in described}
    for role in ("classifier", "encoder", "updatable_pipeline"):
        if role not in described:
            continue
        for name in ("input_ids", "attention_mask"):
            feature = _feature(described[role], "inputs", name)
            if feature is None:
                out.append(f"{files[role]}: has no input {name!r}")
            elif feature.get("shape") != [1, length]:
                out.append(f"{files[role]}: input {name!r} has shape {feature.get('shape')}, expected [1, {length}] "
                           f"(max_length {length})")
    for role, info in described.items():
        if "class_labels" in info and [str(x) for x in (info["class_labels"] or [])] != [str(x) for x in labels]:
            out.append(f"{files[role]}: class labels {info['class_labels']} differ from the manifest labels {labels}")
    if "encoder" in described:
        outputs = described["encoder"].get("outputs", [])
        if not outputs or outputs[0].get("shape") != [embedding]:
            out.append(f"{files['encoder']}: output shape {outputs[0].get('shape') if outputs else None} "
                       f"is not [embedding_size] = [{embedding}]")
    if "updatable_head" in described:
        head_in = described["updatable_head"].get("inputs", [])
        if not head_in or head_in[0].get("shape") != [embedding]:
            out.append(f"{files['updatable_head']}: input shape {head_in[0].get('shape') if head_in else None} "
                       f"is not [embedding_size] = [{embedding}]")
        if "encoder" in described and head_in and described["encoder"].get("outputs"):
            enc_out = described["encoder"]["outputs"][0]
            keys = ("name", "dtype", "shape")
            if any(enc_out.get(k) != head_in[0].get(k) for k in keys):
                out.append(f"{files['encoder']} output {[enc_out.get(k) for k in keys]} does not feed "
                           f"{files['updatable_head']} input {[head_in[0].get(k) for k in keys]} unchanged")
    return out


def _tokenizer_files(ctx: CheckContext, manifest: dict) -> list[str]:
    info = manifest.get("tokenizer") or {}
    out = [f"{name}: listed in manifest tokenizer.files but missing" for name in info.get("files", [])
           if not (ctx.export_dir / name).is_file()]
    vocab = ctx.export_dir / info.get("vocab_file", "vocab.txt")
    if vocab.is_file():
        lines = vocab.read_text(encoding="utf-8").split("\n")
        count = len(lines) - (1 if lines and lines[-1] == "" else 0)
        if count != int(info.get("vocab_size", -1)):
            out.append(f"{vocab.name}: {count} tokens but manifest tokenizer.vocab_size is {info.get('vocab_size')}")
    shipped = ctx.export_dir / "tokenizer.json"
    length = manifest.get("max_length")
    if shipped.is_file() and length:
        # Loaded exactly as shipped (no overrides), as an app or a Swift port would load it.
        from tokenizers import Tokenizer

        try:
            ids = Tokenizer.from_file(str(shipped)).encode("a short note").ids
        except Exception as exc:  # noqa: BLE001 - any unreadable tokenizer is a failure to report
            out.append(f"{shipped.name}: cannot be loaded ({exc})")
        else:
            if len(ids) != int(length):
                out.append(f"{shipped.name}: as shipped it produces {len(ids)} ids, the models take [1, {length}]")
    return out


def check_shape(ctx: CheckContext) -> CheckResult:
    if ctx.manifest is None:
        return CheckResult(NAME, False, ctx.manifest_error or "no manifest", {})
    manifest = ctx.manifest
    problems: list[str] = []
    described: dict[str, dict] = {}
    per_file: dict[str, Any] = {}
    for role, entry in manifest["models"].items():
        name = entry.get("file", role)
        try:
            info = describe_spec(ctx.spec(role))
        except Unavailable as exc:  # pragma: no cover - entries always exist here
            problems.append(f"{name}: {exc}")
            continue
        except Exception as exc:
            problems.append(str(exc) if name in str(exc) else f"{name}: {exc}")
            per_file[name] = {"error": str(exc)}
            continue
        described[role] = info
        found = [f"{name}: {d}" for d in differences(entry, info)]
        problems.extend(found)
        per_file[name] = {"role": role, "format": info["format"], "differences": found,
                          "inputs": {f["name"]: [f.get("dtype", f["type"]), f.get("shape")] for f in info["inputs"]},
                          "outputs": {f["name"]: [f.get("dtype", f["type"]), f.get("shape")] for f in info["outputs"]}}
    try:
        problems.extend(_wiring(manifest, described))
        problems.extend(_tokenizer_files(ctx, manifest))
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(f"manifest.json: malformed ({type(exc).__name__}: {exc})")
    details = {"files": per_file, "max_length": manifest.get("max_length"), "labels": manifest.get("labels"),
               "embedding_size": manifest.get("embedding_size"), "problems": problems,
               "skipped_at_export": manifest.get("skipped", {})}
    if not manifest["models"]:
        return CheckResult(NAME, False, "the manifest lists no model files", details)
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return CheckResult(NAME, False, "; ".join(problems[:3]) + more, details)
    return CheckResult(NAME, True, f"{len(described)} model files match the manifest: tokens [1, {manifest['max_length']}], "
                       f"pooled_embedding [{manifest['embedding_size']}], {len(manifest['labels'])} labels", details)
