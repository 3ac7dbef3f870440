"""The two ways to get text from a chat model: local mlx-lm (default) and an OpenAI-compatible endpoint.

Why a tiny common shape (``generate(requests) -> iterator of (request, Generation)``): the run loop
does not care where text comes from, and a backend that can work concurrently (an HTTP endpoint)
yields answers as they finish, and so does a local model generating a batch.

Privacy: the mlx backend never opens a socket (the Hugging Face cache is read with
``local_files_only``). The openai backend talks only to ``--base-url``; its key is read from the
environment variable the user names and is handed to the client, never stored or printed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from mlx_distill.augment.config import AugmentConfig
from mlx_distill.augment.prompts import Prompt


@dataclass(frozen=True)
class Request:
    prompt: Prompt
    seed: int


@dataclass(frozen=True)
class Generation:
    text: str
    truncated: bool  # stopped at max_tokens: the last line is incomplete
    tokens: int  # generated tokens (as the backend counts them)
    seconds: float


def resolve_model(llm: str, cache_dir: str = "", gguf_dtype: str = "float32") -> tuple[Path, dict]:
    """The mlx-lm folder for ``--llm`` and what to record about it: a folder as is, a ``.gguf``
    converted once into the cache, or a Hugging Face repo id found in the local cache only."""
    path = Path(llm).expanduser()
    if path.suffix.lower() == ".gguf":
        from mlx_distill.augment.gguf_convert import convert_gguf
        from mlx_distill.fileio import sha256_file

        sha256 = sha256_file(path)
        folder = convert_gguf(path, cache_dir or None, gguf_dtype, sha256=sha256)
        return folder, {"model": path.name, "gguf_sha256": sha256}
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"--llm {llm}: folder has no config.json; pass an mlx-lm model folder")
        return path, {"model": path.name}
    if path.exists():
        raise ValueError(f"--llm {llm}: a file that is not .gguf; pass an mlx-lm folder, a .gguf file or a repo id")
    if llm.count("/") != 1 or llm.startswith((".", "/", "~")):
        raise FileNotFoundError(f"--llm {llm}: no such folder or .gguf file (and not a Hugging Face repo id)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(llm, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        raise FileNotFoundError(
            f"--llm {llm}: not in the local Hugging Face cache (mlx_distill never downloads); fetch it yourself "
            f"with `hf download {llm}`, or pass a folder or a .gguf file") from None
    return folder, {"model": llm}


class MlxBackend:
    """mlx-lm on this machine: up to ``concurrency`` requests generated together as one batch
    (mlx-lm's ``BatchGenerator``), each answer yielded as soon as it ends.

    Why a batch: one decoding step reads every weight once whatever the batch size. On a 2-core CPU
    a SmolLM2-135M step takes 77 ms for one sequence and 137 ms for eight; with sampling and
    prompts, augment went from 10 to 22 tokens/s (measured beside one other busy process). Why a sampler per
    request with its own random key: what a request samples then depends on its seed, not on the
    other requests in its batch, so replaying a request after an interruption draws the same
    tokens (up to the last bits of a batch's arithmetic, which may word a resumed row differently;
    no row is lost or repeated either way)."""

    name = "mlx"

    def __init__(self, config: AugmentConfig) -> None:
        folder, self.info = resolve_model(config.llm, config.cache_dir, config.gguf_dtype)
        self.model_name = self.info["model"]
        from mlx_lm import load

        self._model, self._tokenizer = load(str(folder))
        if not getattr(self._tokenizer, "chat_template", None):
            raise ValueError(f"--llm {config.llm}: the model has no chat template; use an instruct/chat model")
        self._config = config
        self.batch_size = config.concurrency

    def generate(self, requests: list[Request]) -> Iterator[tuple[Request, Generation]]:
        from mlx_lm.generate import BatchGenerator

        cfg = self._config
        generator = BatchGenerator(self._model, max_tokens=cfg.max_tokens,
                                   stop_tokens=[[t] for t in self._tokenizer.eos_token_ids],
                                   completion_batch_size=len(requests), prefill_batch_size=len(requests))
        try:
            prompts = [self._prompt_tokens(request.prompt.messages) for request in requests]
            samplers = [_request_sampler(request.seed, cfg.temperature, cfg.top_p) for request in requests]
            uids = generator.insert(prompts, samplers=samplers)
            pending = dict(zip(uids, requests))
            tokens: dict[int, list[int]] = {uid: [] for uid in uids}
            last = time.perf_counter()
            while pending and (responses := generator.next_generated()):
                for response in responses:
                    if response.finish_reason != "stop":
                        tokens[response.uid].append(response.token)
                    if response.finish_reason is None:
                        continue
                    now = time.perf_counter()
                    ids = tokens.pop(response.uid)
                    # seconds since the previous answer: summed over a batch they give its wall time
                    yield pending.pop(response.uid), Generation(
                        self._tokenizer.decode(ids), response.finish_reason == "length",
                        len(ids) + (response.finish_reason == "stop"), now - last)
                    last = now
        finally:
            generator.close()

    def _prompt_tokens(self, messages: list[dict]) -> list[int]:
        """The prompt as token ids, encoded as mlx-lm's ``generate`` encodes a templated string
        (no second BOS when the template already starts with one)."""
        text = self._chat_text(messages)
        bos = self._tokenizer.bos_token
        return self._tokenizer.encode(text, add_special_tokens=bos is None or not text.startswith(bos))

    def _chat_text(self, messages: list[dict]) -> str:
        """The prompt in the model's chat template. Some templates (Gemma's) refuse a system role:
        then the system text goes at the top of the user message, as those models expect."""
        try:
            return self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # jinja2 raises TemplateError subclasses from the template's own checks
            if messages[0]["role"] != "system" or "system" not in str(exc).lower():
                raise ValueError(f"--llm {self._config.llm}: the chat template failed ({exc})") from None
            merged = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}]
            return self._tokenizer.apply_chat_template(merged, add_generation_prompt=True, tokenize=False)


def _request_sampler(seed: int, temperature: float, top_p: float):
    """mlx-lm's temperature + top-p sampling with a random key of the request's own (mlx-lm's
    samplers draw from the global key, which the requests of one batch would share)."""
    import mlx.core as mx
    from mlx_lm.sample_utils import apply_top_p, greedy_sampler

    if temperature == 0:
        return greedy_sampler
    state = {"key": mx.random.key(seed)}

    def sample(logprobs):
        state["key"], key = mx.random.split(state["key"])
        if 0 < top_p < 1:
            logprobs = apply_top_p(logprobs, top_p)
        return mx.random.categorical(logprobs * (1.0 / temperature), key=key)

    return sample


class OpenAIBackend:
    """Any OpenAI-compatible ``/v1/chat/completions`` endpoint, through the official ``openai``
    client (timeouts, retries with exponential backoff on 429/5xx/connection errors), with at most
    ``concurrency`` requests in flight. Answers that are not a chat completion (garbage bodies) are
    retried here with the same backoff, since the client does not retry those."""

    name = "openai"

    def __init__(self, config: AugmentConfig) -> None:
        import openai

        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        # An explicit key (a placeholder when none is configured) stops the client from reading
        # OPENAI_API_KEY on its own: only the variable the user named is ever sent.
        self._client = openai.OpenAI(base_url=config.base_url, api_key=key or "unused", timeout=config.timeout,
                                     max_retries=config.max_retries)
        self._config = config
        self.model_name = config.model
        self.info = {"model": config.model, "base_url": config.base_url}
        self.batch_size = config.concurrency

    def generate(self, requests: list[Request]) -> Iterator[tuple[Request, Generation]]:
        pool = ThreadPoolExecutor(max_workers=self._config.concurrency)
        futures = {pool.submit(self._one, request): request for request in requests}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            # On Ctrl-C or an error, do not wait for queued requests (their answers would be lost anyway).
            pool.shutdown(wait=False, cancel_futures=True)

    def _one(self, request: Request) -> Generation:
        import openai

        cfg = self._config
        start = time.perf_counter()
        for attempt in range(cfg.max_retries + 1):
            try:
                response = self._client.chat.completions.create(
                    model=cfg.model, messages=request.prompt.messages, temperature=cfg.temperature,
                    top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=request.seed)
                choice = response.choices[0]
                text = choice.message.content
                if not isinstance(text, str):
                    raise TypeError("no message content")
            except (openai.APIResponseValidationError, AttributeError, IndexError, TypeError, ValueError) as exc:
                if attempt == cfg.max_retries:
                    raise ValueError(f"--base-url {cfg.base_url}: no valid chat completion after "
                                     f"{cfg.max_retries + 1} tries ({type(exc).__name__})") from None
                time.sleep(min(8.0, 0.5 * 2 ** attempt))
                continue
            except openai.APIStatusError as exc:
                hint = " (check --api-key-env)" if exc.status_code in (401, 403) else \
                    " (check --model)" if exc.status_code == 404 else ""
                raise ValueError(f"--base-url {cfg.base_url}: the endpoint answered HTTP {exc.status_code}{hint}") from None
            except openai.APIConnectionError:
                raise ValueError(f"--base-url {cfg.base_url}: cannot connect (after {cfg.max_retries} retries); "
                                 "is the server running?") from None
            usage = getattr(response, "usage", None)
            tokens = int(getattr(usage, "completion_tokens", 0) or 0)
            return Generation(text, choice.finish_reason == "length", tokens, time.perf_counter() - start)
        raise AssertionError("unreachable")


def make_backend(config: AugmentConfig):
    return OpenAIBackend(config) if config.backend == "openai" else MlxBackend(config)
