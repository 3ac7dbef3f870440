"""Turn what the user typed (a folder or a Hugging Face repo id) into a local model folder.

Why: users name teachers the way they do everywhere else (``google/mobilebert-uncased``), but
nothing may leave the machine unasked — a mistyped folder name must not become a request to a hub
that reveals local paths. So a repo id is resolved from the local Hugging Face cache only, and a
miss says how to fetch the files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (HF_HUB_CACHE, HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def resolve_model_dir(name_or_path: str | os.PathLike[str]) -> Path:
    """A local folder as is; else a repo id from the local HF cache; never the network."""
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
        return Path(snapshot_download(text, local_files_only=True, cache_dir=cache))
    except Exception:  # noqa: BLE001 - every kind of cache miss ends in the error below
        pass
    raise FileNotFoundError(
        f"{text!r}: no such folder, and no Hugging Face repo {text!r} in the local cache ({cache}). If it is a "
        f"folder, check the path; if it is a repo id, fetch it on a machine with internet with "
        f"`hf download {text} --include '*.json' '*.safetensors' vocab.txt` and copy the cache or the folder here. "
        "mlx_distill never downloads on its own: nothing leaves this machine."
    )
