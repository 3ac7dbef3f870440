"""``AugmentConfig``: every setting of ``augment`` once, with its default and help text.

Why field metadata: the command-line flags are generated from this dataclass (as mlx-lm's
``TrainingArgs`` keeps help next to each field), so a default or a help line cannot drift between
the code, the CLI and the README.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlx_distill.build.settings import flag_of


def _setting(default: Any, help: str, *, flag: str | None = None, choices: tuple | None = None,
             repeat: bool = False, required: bool = False) -> Any:
    meta = {"help": help, "flag": flag, "choices": choices, "repeat": repeat, "required": required}
    if repeat:
        return field(default_factory=list, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class AugmentConfig:
    # what to read and write
    train: str = _setting("", "labelled .jsonl/.csv whose labels are augmented and whose texts seed the prompts", required=True)
    out: str = _setting("", "output .jsonl: synthetic rows with provenance, appended as they are made; rerun to resume", required=True)
    per_label: int = _setting(20, "synthetic rows to keep per label (a rerun continues up to this many)")
    labels: list = _setting(None, "only these labels (repeatable; default: every label of --train)", flag="--label", repeat=True)
    eval: str = _setting("", "labelled eval file: synthetic rows that occur in it are dropped")
    test: str = _setting("", "labelled test file: synthetic rows that occur in it are dropped")
    exclude: list = _setting(None, "more files whose texts must not be produced (repeatable)", repeat=True)
    rejects: str = _setting("", "also write every rejected candidate with its reason to this .jsonl")
    restart: bool = _setting(False, "discard an existing --out (and its progress file) and start over")
    # the model
    backend: str = _setting("mlx", "mlx: local mlx-lm model, nothing leaves the machine; openai: an OpenAI-compatible "
                                   "endpoint (--base-url)", choices=("mlx", "openai"))
    llm: str = _setting("", "mlx backend: an mlx-lm folder, a Hugging Face repo id already in the local cache "
                            "(never downloaded) or a .gguf file (converted once into --cache-dir)")
    gguf_dtype: str = _setting("float32", "weights dtype of a converted .gguf (float32 is fastest on a CPU)",
                               choices=("float32", "float16", "bfloat16"))
    cache_dir: str = _setting("", "where converted .gguf models live (default $MLX_DISTILL_CACHE or ~/.cache/mlx_distill)")
    base_url: str = _setting("", "openai backend: endpoint, e.g. http://127.0.0.1:8080/v1 for mlx_lm.server")
    model: str = _setting("", "openai backend: model name sent with each request")
    api_key_env: str = _setting("", "openai backend: name of the environment variable holding the API key "
                                    "(the key itself is never written anywhere)")
    concurrency: int = _setting(8, "requests in flight at once (openai: concurrent HTTP requests; mlx: requests generated "
                                   "together as one batch, 1-8 suits a CPU)")
    timeout: float = _setting(120.0, "openai backend: seconds before a request is abandoned and retried")
    max_retries: int = _setting(5, "openai backend: retries with exponential backoff on 429/5xx/timeouts/bad answers")
    # prompts and sampling
    template: str = _setting("", "prompt template file with placeholders {label} {examples} {n} {labels} "
                                 "(default: the built-in template)")
    system_prompt: str = _setting("You write realistic, varied example texts for training a text classifier.",
                                  "system message sent before each prompt (empty: none)")
    shots: int = _setting(4, "real examples of the label shown in each prompt (rotated between requests)")
    per_request: int = _setting(5, "examples asked for in each request")
    max_requests: int = _setting(0, "requests per label before giving up on reaching --per-label "
                                    "(0: 4 x per-label / per-request, at least 2)")
    temperature: float = _setting(0.9, "sampling temperature")
    top_p: float = _setting(0.95, "nucleus sampling: keep the most likely tokens up to this mass")
    max_tokens: int = _setting(256, "tokens generated per request (a line cut off at this limit is dropped)")
    seed: int = _setting(0, "seed for example rotation and sampling (each request derives its own)")
    # cleaning
    min_words: int = _setting(2, "shortest kept row, in words")
    max_words: int = _setting(60, "longest kept row, in words")
    min_chars: int = _setting(8, "shortest kept row, in characters")
    max_chars: int = _setting(400, "longest kept row, in characters")
    near_duplicate: float = _setting(90.0, "rapidfuzz ratio (0-100) at or above which two texts count as the same "
                                           "(101: exact matches only)")
    stop_after: int = _setting(0, "stop after this many new rows (0: no limit); a rerun continues")
    progress: bool = _setting(True, "progress bar with ETA on stderr", flag="--progress")

    def validate(self) -> None:
        """Raise one clear ``ValueError`` naming the flag for a setting that cannot work."""
        def bad(flag: str, why: str) -> None:
            raise ValueError(f"{flag}: {why}")

        if not self.train:
            bad("--train", "required")
        if not self.out:
            bad("--out", "required")
        if Path(self.out).suffix.lower() != ".jsonl":
            bad("--out", f"{self.out!r} must end in .jsonl")
        inputs = [self.train, self.eval, self.test, *self.exclude, self.template]
        for other in filter(None, inputs):
            if Path(other).exists() and Path(self.out).exists() and os.path.samefile(other, self.out) \
                    or Path(other).resolve() == Path(self.out).resolve():
                bad("--out", f"{self.out} is also an input ({other}); inputs are never overwritten, choose another file")
        if self.rejects and Path(self.rejects).resolve() in {Path(p).resolve() for p in filter(None, inputs + [self.out])}:
            bad("--rejects", f"{self.rejects} is also an input or --out; choose another file")
        for name in ("per_label", "shots", "per_request", "max_tokens", "concurrency"):
            if getattr(self, name) < 1:
                bad(_flag(name), f"must be at least 1, got {getattr(self, name)}")
        for name in ("max_requests", "stop_after", "max_retries", "min_words", "min_chars"):
            if getattr(self, name) < 0:
                bad(_flag(name), f"must be 0 or more, got {getattr(self, name)}")
        if self.min_words > self.max_words:
            bad("--min-words", f"{self.min_words} is above --max-words {self.max_words}")
        if self.min_chars > self.max_chars:
            bad("--min-chars", f"{self.min_chars} is above --max-chars {self.max_chars}")
        if not 0 <= self.temperature <= 5:
            bad("--temperature", f"{self.temperature} is outside 0-5")
        if not 0 < self.top_p <= 1:
            bad("--top-p", f"{self.top_p} is outside (0, 1]")
        if not 0 <= self.near_duplicate <= 101:
            bad("--near-duplicate", f"{self.near_duplicate} is outside 0-101")
        if self.backend == "mlx" and not self.llm:
            bad("--llm", "required with --backend mlx (an mlx-lm folder, a cached repo id or a .gguf file)")
        if self.backend == "openai":
            if not self.base_url:
                bad("--base-url", "required with --backend openai (e.g. http://127.0.0.1:8080/v1)")
            if not self.model:
                bad("--model", "required with --backend openai (the model name the endpoint serves)")
            if self.api_key_env and not os.environ.get(self.api_key_env):
                bad("--api-key-env", f"environment variable {self.api_key_env} is not set")

    def requests_per_label(self) -> int:
        if self.max_requests:
            return self.max_requests
        return max(2, -(-4 * self.per_label // self.per_request))


def _flag(name: str) -> str:
    return flag_of(AugmentConfig, name)


_FILE_FIELDS = {"train", "out", "eval", "test", "exclude", "rejects", "template", "cache_dir"}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per ``AugmentConfig`` field, typed, with the field's default and help."""
    for f in dataclasses.fields(AugmentConfig):
        meta = f.metadata
        flag = _flag(f.name)
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta["help"]}
        if meta["repeat"]:
            kwargs.update(action="append", default=[], metavar="FILE" if f.name in _FILE_FIELDS else "TEXT")
        elif f.type in ("bool", bool):
            kwargs.update(action=argparse.BooleanOptionalAction if f.default else "store_true", default=f.default)
        else:
            kind = {"int": int, "float": float, "str": str}[str(f.type)]
            metavar = {"int": "N", "float": "X"}.get(str(f.type), "FILE" if f.name in _FILE_FIELDS else "TEXT")
            kwargs.update(type=kind, default=f.default, required=meta["required"], metavar=metavar)
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
            if f.default not in ("", None) and not meta["required"]:
                kwargs["help"] += f" (default {f.default})"
        parser.add_argument(flag, **kwargs)


def config_from_args(args: argparse.Namespace) -> AugmentConfig:
    return AugmentConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(AugmentConfig)})
