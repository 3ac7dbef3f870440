"""Convert a ``pytorch_model.bin``-only Hugging Face folder into a safetensors folder.

Both our MLX models and the export shell read ``model.safetensors`` only (no pickle loading of
untrusted files). Older checkpoints ship ``pytorch_model.bin`` (possibly sharded with
``pytorch_model.bin.index.json``); this writes ``DST/model.safetensors`` plus copies of every
other file (config, tokenizer, ...).

Tied weights: ``.bin`` files pickle tensors that share storage (e.g. an MLM decoder tied to the
word embeddings) and safetensors refuses shared or overlapping storage. Every tensor is written as
its own contiguous copy under its original name, so nothing is dropped and transformers re-ties
on load. The written file is read back and compared tensor by tensor.

    python -m export.convert_bin SRC DST
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from mlx_distill.fileio import staged_directory

_WEIGHT_SUFFIXES = (".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")
_SKIP_NAMES = {"pytorch_model.bin.index.json", "model.safetensors.index.json"}


class ConvertBinError(ValueError):
    """The source folder cannot be converted; the message names the file and the fix."""


def _bin_files(src: Path) -> list[Path]:
    single = src / "pytorch_model.bin"
    index = src / "pytorch_model.bin.index.json"
    if single.is_file():
        return [single]
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [s for s in shards if not (src / s).is_file()]
        if missing:
            raise ConvertBinError(f"{index} lists missing shards: {missing}")
        return [src / s for s in shards]
    raise ConvertBinError(f"{src}: no pytorch_model.bin (or pytorch_model.bin.index.json) to convert")


def load_bin_state(src: Path) -> dict[str, torch.Tensor]:
    """All tensors from the .bin file(s), loaded with ``weights_only=True`` (no arbitrary pickles)."""
    state: dict[str, torch.Tensor] = {}
    for path in _bin_files(src):
        try:
            part = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ConvertBinError(f"{path}: cannot be loaded as plain tensors ({exc})") from exc
        if isinstance(part, dict) and "state_dict" in part and isinstance(part["state_dict"], dict):
            part = part["state_dict"]
        if not isinstance(part, dict):
            raise ConvertBinError(f"{path}: expected a dict of tensors, got {type(part).__name__}")
        for key, value in part.items():
            if not isinstance(value, torch.Tensor):
                raise ConvertBinError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
            if key in state:
                raise ConvertBinError(f"{path}: tensor {key!r} appears in more than one shard")
            state[key] = value
    return state


def untie(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An independent contiguous copy of every tensor (safetensors forbids shared storage)."""
    return {key: value.detach().contiguous().clone() for key, value in state.items()}


def convert_bin_folder(src: Union[str, Path], dst: Union[str, Path], overwrite: bool = False) -> Path:
    """Write ``dst`` (model.safetensors + copies of the other files of ``src``); return its path."""
    from safetensors.torch import load_file, save_file

    src, dst = Path(src).absolute(), Path(dst).absolute()
    if not src.is_dir():
        raise ConvertBinError(f"{src}: not a directory")
    if src == dst:
        raise ConvertBinError("DST must differ from SRC (the source folder is left untouched)")
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise ConvertBinError(f"{dst} exists and is not empty; choose a new folder or pass --overwrite to replace it")
    state = untie(load_bin_state(src))
    with staged_directory(dst) as stage:
        target = stage / "model.safetensors"
        save_file(state, str(target), metadata={"format": "pt"})
        reloaded = load_file(str(target))
        bad = [key for key in state if key not in reloaded or not torch.equal(state[key], reloaded[key])]
        if bad or len(reloaded) != len(state):
            raise ConvertBinError(f"round-trip check failed for {bad[:8]}")
        for item in src.iterdir():
            if item.is_file() and not item.name.endswith(_WEIGHT_SUFFIXES) and item.name not in _SKIP_NAMES:
                shutil.copyfile(item, stage / item.name)
    return dst


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.convert_bin", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="folder with pytorch_model.bin and config.json")
    parser.add_argument("dst", help="new folder to write (model.safetensors + copied files)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty DST")
    args = parser.parse_args(argv)
    try:
        out = convert_bin_folder(args.src, args.dst, overwrite=args.overwrite)
    except ConvertBinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'model.safetensors'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
