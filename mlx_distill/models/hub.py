"""Turn what the user typed (a folder or a Hugging Face repo id) into a local model folder.

Why: users name teachers the way they do everywhere else (``google/mobilebert-uncased``), but
this package must also work with no network — so the local Hugging Face cache is consulted first,
a download is attempted only when the hub is not switched off, and every failure says how to get
the files onto the machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_PATTERNS = ["*.json", "*.safetensors", "vocab.txt", "*.model"]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (HF_HUB_CACHE, HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def resolve_model_dir(name_or_path: str | os.PathLike[str]) -> Path:
    """A local folder as is; else a repo id from the HF cache (or downloaded when allowed)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{path} is a file; pass the model folder that holds config.json")
    text = str(name_or_path)
    if not _REPO_ID.match(text) or text.startswith((".", "/", "~")):
        raise FileNotFoundError(f"model folder {path} does not exist")

    from huggingface_hub import snapshot_download  # imported lazily: only repo ids need it

    cache = hub_cache_dir()
    try:
        return Path(snapshot_download(text, allow_patterns=_PATTERNS, local_files_only=True, cache_dir=cache))
    except Exception:  # noqa: BLE001 - any cache miss falls through to the download / error below
        pass
    how = (
        f"`hf download {text} --include '*.json' '*.safetensors' vocab.txt` on a machine with "
        f"internet (then copy its folder here and pass that path), or pass a local model folder"
    )
    if _offline():
        raise FileNotFoundError(
            f"{text!r} is not a local folder and is not in the Hugging Face cache ({cache}), and HF_HUB_OFFLINE "
            f"is set. Fetch it with {how}."
        )
    try:
        return Path(snapshot_download(text, allow_patterns=_PATTERNS, cache_dir=cache))
    except Exception as exc:  # noqa: BLE001 - network, auth and missing-repo errors all end here
        raise FileNotFoundError(
            f"{text!r} is not a local folder, not in the Hugging Face cache, and could not be "
            f"downloaded ({type(exc).__name__}: {exc}). Fetch it with {how}."
        ) from None
