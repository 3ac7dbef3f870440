"""The ``augment`` run: plan requests per label, generate, parse, filter, append, resume.

Resume contract: ``OUT`` holds the kept rows and ``OUT.progress.jsonl`` one line per finished
request (its label, index and reject counts) after a header that fingerprints the settings. Rows
are appended before their request's progress line, both fsynced, so after any interruption a rerun
of the same command knows every finished request, skips it, and continues until each label has
``per_label`` rows. A rerun with settings that change what would be generated is refused (it would
mix two runs into one file) with the names of what changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mlx_distill.augment.config import AugmentConfig
from mlx_distill.augment.filters import REASONS, RowFilter
from mlx_distill.augment.backends import Request, make_backend
from mlx_distill.augment.journal import Appender, read_jsonl
from mlx_distill.augment.parse import parse_output
from mlx_distill.augment.prompts import PromptBuilder, load_template, request_seed

# Settings that do not change what a request generates or keeps: a rerun may change them freely.
_RESUMABLE = {"out", "per_label", "labels", "rejects", "restart", "cache_dir", "concurrency", "timeout",
              "max_retries", "max_requests", "stop_after", "progress", "api_key_env", "gguf_dtype", "base_url"}


@dataclass
class AugmentResult:
    out: Path
    rows_per_label: dict[str, int]  # rows in OUT now, per label
    new_rows: int  # written by this call
    requests: int  # made by this call
    rejected: Counter = field(default_factory=Counter)  # over the whole file's history, by reason
    generated_tokens: int = 0  # by this call
    seconds: float = 0.0  # generation time of this call
    short: dict[str, int] = field(default_factory=dict)  # labels that ran out of requests: rows missing

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds else 0.0


def progress_path(out: Path) -> Path:
    return out.with_name(out.name + ".progress.jsonl")


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path else ""


def _fingerprint(config: AugmentConfig, template: str, model_info: dict) -> dict:
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in _RESUMABLE}
    for name in ("train", "eval", "test"):
        values[name] = _file_digest(values[name])
    values["exclude"] = [_file_digest(p) for p in config.exclude]
    values["template"] = hashlib.sha256(template.encode()).hexdigest()[:16]
    values["model"] = model_info.get("gguf_sha256") or model_info.get("model")
    values.pop("llm", None)
    return values


def _read_exclusions(config: AugmentConfig) -> list[str]:
    from mlx_distill.data import read_examples

    texts = []
    for flag, path in [("--eval", config.eval), ("--test", config.test), *(("--exclude", p) for p in config.exclude)]:
        if path:
            if not Path(path).exists():
                raise FileNotFoundError(f"{flag} {path}: no such file")
            texts += [e.text for e in read_examples(path, require_label=False)]
    return texts


def run_augment(config: AugmentConfig, backend=None) -> AugmentResult:
    """Generate until every label has ``config.per_label`` rows in ``config.out`` (or runs out of
    requests). ``backend``: an already made backend (tests reuse one model); default from config."""
    from mlx_distill.data import read_examples

    config.validate()
    out = Path(config.out)
    journal = progress_path(out)
    if config.restart:
        for path in (out, journal):
            path.unlink(missing_ok=True)
    train = read_examples(config.train)
    by_label: dict[str, list[str]] = {}
    for example in train:
        by_label.setdefault(example.label, []).append(example.text)
    labels = list(config.labels) or list(by_label)
    unknown = [label for label in labels if label not in by_label]
    if unknown:
        raise ValueError(f"--label {unknown[0]}: not a label of {config.train} (labels: {', '.join(by_label)})")
    template = load_template(config.template)
    excluded = _read_exclusions(config)

    rows, progress = read_jsonl(out), read_jsonl(journal)
    if rows and not progress:
        raise ValueError(f"--out {out}: exists but has no {journal.name}; it was not written by augment "
                         "(choose another --out, or --restart to replace it)")
    backend = backend or make_backend(config)
    fingerprint = _fingerprint(config, template, backend.info)
    if progress:
        recorded = progress[0].get("fingerprint", {})
        changed = sorted(k for k in set(recorded) | set(fingerprint) if recorded.get(k) != fingerprint.get(k))
        if changed:
            raise ValueError(f"--out {out}: was made with other settings (changed: {', '.join(changed)}); "
                             "rerun with the same ones, choose another --out, or pass --restart")
    done = {(p["label"], p["request"]) for p in progress[1:]}
    rejected = Counter()
    for p in progress[1:]:
        rejected.update(p.get("rejected", {}))
    count = Counter(row["label"] for row in rows)
    gate = RowFilter([e.text for e in train], excluded, min_words=config.min_words, max_words=config.max_words,
                     min_chars=config.min_chars, max_chars=config.max_chars, near_duplicate=config.near_duplicate)
    for row in rows:
        gate.keep(row["text"])
    builder = PromptBuilder(by_label, template,
                            config.system_prompt, config.shots, config.per_request, config.seed)
    result = AugmentResult(out, {label: count[label] for label in labels}, 0, 0, rejected)
    limit = config.requests_per_label()

    progress_log = Appender(journal)
    if not progress:
        progress_log.write([{"fingerprint": fingerprint}])
    rows_log = Appender(out)
    rejects_log = Appender(Path(config.rejects)) if config.rejects else None
    bar = _progress_bar(config, labels, count)
    try:
        while True:
            batch = _plan(builder, labels, count, done, config, limit, backend.batch_size, result.new_rows)
            if not batch:
                break
            for request, generation in backend.generate(batch):
                prompt = request.prompt
                label = prompt.label
                result.requests += 1
                result.generated_tokens += generation.tokens
                result.seconds += generation.seconds
                parsed = parse_output(generation.text, generation.truncated, label)
                reasons = Counter(reason for _, reason in parsed.rejected)
                rejected_rows = [(line, reason) for line, reason in parsed.rejected]
                kept = []
                for text in parsed.candidates:
                    reason = gate.reason(text)
                    if reason is None and count[label] + len(kept) >= config.per_label:
                        reason = "surplus"
                    if reason is None and config.stop_after and result.new_rows + len(kept) >= config.stop_after:
                        reason = "surplus"
                    if reason:
                        reasons[reason] += 1
                        rejected_rows.append((text, reason))
                        continue
                    gate.keep(text)
                    kept.append(_row(text, label, prompt, request.seed, backend, config))
                rows_log.write(kept)
                progress_log.write([{"label": label, "request": prompt.request, "prompt_hash": prompt.hash,
                                     "kept": len(kept), "rejected": dict(reasons), "tokens": generation.tokens,
                                     "truncated": generation.truncated}])
                if rejects_log:
                    rejects_log.write([{"text": t, "label": label, "reason": r, "request": prompt.request,
                                        "prompt_hash": prompt.hash} for t, r in rejected_rows])
                done.add((label, prompt.request))
                count[label] += len(kept)
                result.new_rows += len(kept)
                rejected.update(reasons)
                if bar is not None:
                    bar.update(len(kept))
                    bar.set_postfix_str(f"{label} req {prompt.request}, rejected {sum(rejected.values())}")
    finally:
        for handle in (rows_log, progress_log, rejects_log, bar):
            if handle is not None:
                handle.close()
    result.rows_per_label = {label: count[label] for label in labels}
    if not (config.stop_after and result.new_rows >= config.stop_after):
        result.short = {label: config.per_label - count[label] for label in labels if count[label] < config.per_label}
    return result


def _plan(builder: PromptBuilder, labels, count, done, config: AugmentConfig, limit: int, size: int, new_rows: int):
    """The next requests: labels still short of rows, round-robin, their lowest unfinished indices,
    no more per label than its missing rows need."""
    if config.stop_after:
        if new_rows >= config.stop_after:
            return []
        # no more requests than the rows still wanted could need: answers past --stop-after are surplus
        size = min(size, -(-(config.stop_after - new_rows) // config.per_request))
    queues = {}
    for label in labels:
        missing = config.per_label - count[label]
        if missing <= 0:
            continue
        todo = [i for i in range(limit) if (label, i) not in done][: -(-missing // config.per_request)]
        if todo:
            queues[label] = todo
    batch = []
    while queues and len(batch) < size:
        for label in list(queues):
            if len(batch) == size:
                break
            index = queues[label].pop(0)
            if not queues[label]:
                del queues[label]
            batch.append((label, index))
    return [Request(builder.build(label, index), request_seed(config.seed, label, index)) for label, index in batch]


def _row(text: str, label: str, prompt, seed: int, backend, config: AugmentConfig) -> dict:
    """A data row (``text``, ``label``: readable by ``read_examples``) with its provenance."""
    provenance = {"backend": backend.name, **backend.info, "label": label, "request": prompt.request,
                  "prompt_hash": prompt.hash, "seed": seed, "run_seed": config.seed,
                  "temperature": config.temperature, "top_p": config.top_p, "max_tokens": config.max_tokens}
    return {"text": text, "label": label,
            "source": f"augment:{backend.name}:{backend.model_name}:{label}#{prompt.request}",
            "provenance": provenance}


def _progress_bar(config: AugmentConfig, labels: list[str], count: Counter):
    if not config.progress:
        return None
    from tqdm import tqdm

    total = config.per_label * len(labels)
    done = sum(min(count[label], config.per_label) for label in labels)
    if config.stop_after:
        total = min(total, done + config.stop_after)
    return tqdm(total=total, initial=done, unit="row", desc="augment", file=sys.stderr, dynamic_ncols=True)


def summary_lines(result: AugmentResult) -> list[str]:
    """What a person reads at the end of a run."""
    lines = [f"{result.out}: " + ", ".join(f"{label} {n}" for label, n in result.rows_per_label.items())
             + f" rows ({result.new_rows} new from {result.requests} requests)"]
    if result.seconds:
        lines.append(f"generated {result.generated_tokens} tokens in {result.seconds:.1f} s "
                     f"({result.tokens_per_second:.1f} tokens/s)")
    if result.rejected:
        order = [r for r in (*REASONS, "surplus") if result.rejected.get(r)]
        lines.append("rejected: " + ", ".join(f"{reason} {result.rejected[reason]}" for reason in order))
    for label, missing in result.short.items():
        lines.append(f"warning: {label}: {missing} rows short after the request limit; rerun the same command "
                     "with a higher --max-requests to continue")
    return lines
