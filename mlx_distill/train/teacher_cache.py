"""Run the teacher once over the training texts and keep what distillation needs on disk.

Why: the teacher (BERT-Large is ~1.3 GB) is the expensive half of every distillation step. Its
outputs for a fixed set of texts never change, so we compute them once, store them in safetensors
shards (logits in fp32; mapped hidden states / attention maps in fp16 unless that would overflow) keyed by a hash of
(teacher weights, texts, max length, what is stored), and reuse them on the next run. While the
student trains, the teacher need not be in memory at all.

Data-parallel runs compute the cache data-parallel: each rank runs the teacher on its part of every
shard, rank 0 gathers the parts and writes the shard, and every rank then reads the finished cache
(so on several machines the cache folder must be shared, at the same path, between them).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlx.core as mx
import numpy as np
from safetensors import safe_open

from mlx_distill.distributed import World, barrier, broadcast_json, world as current_world
from mlx_distill.fileio import disk_full_guard, hash_into, repair_directory, sha256_file, staged_directory
from mlx_distill.models import LoadedModel
from mlx_distill.models.checkpoint import INDEX_FILE, SINGLE_FILE
from mlx_distill.train.batching import EncodedDataset, sequential_batches

SHARD_ROWS = 1024


@dataclass(frozen=True)
class CacheSpec:
    """What to store. Layer indices address ``hidden_states`` (0 = embeddings) and, for attention,
    1-based transformer layers. ``mean_heads`` stores head-averaged attention maps (used when the
    student has a different head count — it also cuts the cache size by the head count)."""

    hidden_layers: tuple[int, ...] = ()
    attention_layers: tuple[int, ...] = ()
    mean_heads: bool = True
    batch_size: int = 32


_FP16_MAX = 65504.0


def _compact(name: str, values: mx.array) -> mx.array:
    """Hidden states go to fp16 (half the disk and memory) unless they would overflow it — a
    MobileBERT teacher's NoNorm activations can exceed 65504, and inf targets would make the
    hidden-state loss NaN. Logits stay fp32; attention maps are probabilities, safe in fp16."""
    if name.startswith("hidden.") and mx.abs(values).max().item() >= _FP16_MAX:
        return values.astype(mx.float32)
    return values if name == "logits" else values.astype(mx.float16)


def cache_key(teacher_dir: Path, dataset: EncodedDataset, spec: CacheSpec) -> str:
    """sha256 of (teacher config + weights, token ids + masks, spec) — ids already encode the texts
    *and* the max length and tokenizer, so any change there gives a new key."""
    digest = hashlib.sha256()
    hash_into(digest, teacher_dir / "config.json")
    weights = [teacher_dir / SINGLE_FILE] if (teacher_dir / SINGLE_FILE).exists() else sorted(
        {teacher_dir / f for f in json.loads((teacher_dir / INDEX_FILE).read_text())["weight_map"].values()}
    )
    for path in weights:
        hash_into(digest, path)
    digest.update(np.ascontiguousarray(dataset.input_ids).tobytes())
    digest.update(np.ascontiguousarray(dataset.attention_mask).tobytes())
    spec_fields = {k: v for k, v in asdict(spec).items() if k != "batch_size"}
    digest.update(json.dumps(spec_fields, sort_keys=True).encode())
    return digest.hexdigest()[:24]


_NUMPY_DTYPES = {"F16": np.float16, "F32": np.float32}  # what _write stores (see _compact)


def _memory_map(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file as read-only memory maps.

    ``safe_open`` reads and validates the header, but its slices take ranges only, not a batch's
    shuffled rows: read row by row, 32 rows of a (1024, 128, 312) fp16 tensor cost 1.4 ms against
    0.07 ms from a NumPy memory map (measured once on the project's 2-core CPU, 2026-12), per cached
    tensor and step. So each tensor is mapped with NumPy where the format puts it: back to back in ``offset_keys`` order, ending at
    the end of the file (``safe_open`` refuses a header that leaves a gap or does not cover the
    file), and the first row read both ways must agree."""
    out = {}
    with safe_open(path, framework="numpy") as f:
        layout = []
        for name in f.offset_keys():
            piece = f.get_slice(name)
            if piece.get_dtype() not in _NUMPY_DTYPES:
                raise ValueError(f"{path}: {name} is {piece.get_dtype()}, not a dtype the teacher cache writes")
            layout.append((name, np.dtype(_NUMPY_DTYPES[piece.get_dtype()]), tuple(piece.get_shape())))
        offset = path.stat().st_size - sum(dtype.itemsize * math.prod(shape) for _, dtype, shape in layout)
        for name, dtype, shape in layout:
            out[name] = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
            offset += dtype.itemsize * math.prod(shape)
            if not np.array_equal(out[name][:1], f.get_slice(name)[:1], equal_nan=True):
                raise ValueError(f"{path}: {name} is not where the safetensors header puts it")
    return out


class ShardedRows:
    """Rows spread over several shards' memory maps, read on demand.

    Why: hidden states and attention maps of a large teacher over many texts run to gigabytes;
    a batch needs only its own rows, so the cache is never loaded whole.
    """

    def __init__(self, parts: list[np.ndarray]):
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.dtype = np.result_type(*[p.dtype for p in parts])
        self.shape = (int(self.starts[-1]), *parts[0].shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        return self.take(rows)

    def take(self, rows, *trailing: slice) -> np.ndarray:
        """``self[rows]`` with ``trailing`` slices of the other axes applied while reading, so a
        batch cut to its length copies only what it uses from the memory maps (on a step's hot path)."""
        rows = np.atleast_1d(np.asarray(rows))
        shard = np.searchsorted(self.starts, rows, side="right") - 1
        shape = self.parts[0][(slice(0, 1), *trailing)].shape[1:]
        out = np.empty((len(rows), *shape), dtype=self.dtype)
        for index in np.unique(shard):
            pick = shard == index
            out[pick] = self.parts[index][(rows[pick] - self.starts[index], *trailing)]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[np.arange(len(self))]
        return whole if dtype is None else whole.astype(dtype)


@dataclass
class TeacherCache:
    key: str
    logits: np.ndarray  # (N, C) float32, small: loaded whole
    hidden: dict[int, ShardedRows] = field(default_factory=dict)  # layer -> (N, L, H), fp16 unless that overflows
    attention: dict[int, ShardedRows] = field(default_factory=dict)  # layer -> (N, heads|1, L, L) float16
    reused: bool = False

    def batch(self, rows: np.ndarray, length: int | None = None) -> dict[str, mx.array]:
        """The teacher's outputs for ``rows``; per-token ones cut to the batch's ``length``."""
        cut = slice(None, length)
        out = {"teacher_logits": mx.array(self.logits[rows])}
        for layer, values in self.hidden.items():
            out[f"teacher_hidden.{layer}"] = mx.array(values.take(rows, cut))
        for layer, values in self.attention.items():
            out[f"teacher_attention.{layer}"] = mx.array(values.take(rows, slice(None), cut, cut))
        return out

    @classmethod
    def build(cls, teacher: LoadedModel, dataset: EncodedDataset, spec: CacheSpec, root: Path,
              world: World | None = None) -> "TeacherCache":
        """Reuse ``root/<key>`` when it exists and is whole; otherwise run the teacher and write it
        atomically (shards fsynced, then the manifest with each shard's size and sha256, last).
        In a data-parallel run rank 0 decides and writes; all ranks compute and then read."""
        world = world if world is not None else current_world()
        decision = None
        if world.is_root:
            key = cache_key(teacher.path, dataset, spec)
            folder = root / key
            repair_directory(folder)  # a kill between the swap's two renames: the previous cache comes back
            reuse = False
            if (folder / "manifest.json").exists():
                damage = _damage(folder, len(dataset))
                reuse = damage is None
                if not reuse:
                    print(f"note: the teacher cache {folder} is damaged ({damage}); rebuilding it", file=sys.stderr)
            decision = {"key": key, "reuse": reuse}
        decision = broadcast_json(decision, world)
        key, folder = decision["key"], root / decision["key"]
        if not decision["reuse"]:
            with disk_full_guard(root, "the teacher cache"):
                if world.is_root:  # computes with the other ranks, writes alone (staged, then swapped in)
                    with staged_directory(folder, kind="teacher cache") as staging:
                        cls._write(teacher, dataset, spec, key, staging, world)
                else:
                    cls._write(teacher, dataset, spec, key, None, world)
        barrier(world)  # rank 0 has written (or checked) the cache the others are about to read
        if not (folder / "manifest.json").exists():
            raise ValueError(
                f"{folder}: rank {world.rank} cannot see the teacher cache rank 0 wrote; on several machines the "
                "output folder (or --cache-dir) must be one shared folder mounted at the same path on each"
            )
        return cls._read(folder, key, reused=decision["reuse"])

    @staticmethod
    def _write(teacher: LoadedModel, dataset: EncodedDataset, spec: CacheSpec, key: str, tmp: Path | None,
               world: World | None = None) -> None:
        """Run the teacher over ``dataset``; rank 0 writes the shards and the manifest into the empty
        folder ``tmp`` (the other ranks pass None: they only compute their part)."""
        world = world if world is not None else World()
        need_hidden, need_attention = bool(spec.hidden_layers), bool(spec.attention_layers)
        shards = []
        # A transfer set of 10k rows takes minutes on a CPU: say what runs, with a bar on a terminal.
        bar = None
        if world.is_root:
            print(f"note: the teacher scores {len(dataset):,} rows once into the cache {tmp.parent}", file=sys.stderr,
                  flush=True)
            if sys.stderr.isatty():
                from tqdm import tqdm

                bar = tqdm(total=len(dataset), desc="teacher cache", unit="row", file=sys.stderr, dynamic_ncols=True)
        for shard_no, start in enumerate(range(0, len(dataset), SHARD_ROWS)):
            all_rows = np.arange(start, min(start + SHARD_ROWS, len(dataset)))
            # This rank's part: whole batches of the one-process run, so each row is computed in
            # exactly the batch (and at the length) it would be alone. A rank left without a batch
            # (a tiny shard) runs one row so its gathered arrays have the right shapes; it is dropped.
            batches = _rank_batches(len(all_rows), spec.batch_size, world)[world.rank]
            part_rows = sum(len(b) for b in batches)
            if not batches:
                batches = [np.arange(1)]
            rows = all_rows
            tensors: dict[str, list[mx.array]] = {}
            for batch_rows in batches:
                index = rows[batch_rows]
                ids, mask, length = dataset.batch_arrays(index)
                out = teacher.model(mx.array(ids), mx.array(mask), output_hidden_states=need_hidden,
                                    output_attentions=need_attention)
                # The teacher runs on the batch's length; the cache stores every row at the full
                # length with zeros at padding (masked by every loss), so what is stored does not
                # depend on how rows were batched.
                pad = dataset.input_ids.shape[1] - length
                real = mx.array(mask).astype(mx.float32)
                tensors.setdefault("logits", []).append(out.logits.astype(mx.float32))
                for layer in spec.hidden_layers:
                    values = out.hidden_states[layer] * real[:, :, None]
                    tensors.setdefault(f"hidden.{layer}", []).append(mx.pad(values, [(0, 0), (0, pad), (0, 0)]))
                for layer in spec.attention_layers:
                    maps = out.attentions[layer - 1]
                    maps = maps.mean(axis=1, keepdims=True) if spec.mean_heads else maps
                    maps = maps * (real[:, None, :, None] * real[:, None, None, :])
                    tensors.setdefault(f"attention.{layer}", []).append(
                        mx.pad(maps.astype(mx.float16), [(0, 0), (0, 0), (0, pad), (0, pad)]))
                mx.eval(tensors)
                if bar is not None:
                    bar.update(len(index) * world.size)
            merged = {k: mx.concatenate(v) for k, v in tensors.items()}
            if world.distributed:
                merged = _gather(merged, part_rows, len(all_rows), spec.batch_size, world)
            if not world.is_root:
                continue
            name = f"shard-{shard_no:05d}.safetensors"
            mx.save_safetensors(str(tmp / name), {k: _compact(k, v) for k, v in merged.items()})
            shards.append({"name": name, "bytes": (tmp / name).stat().st_size, "sha256": sha256_file(tmp / name)})
        if bar is not None:
            bar.close()
        if not world.is_root:
            return
        manifest = {"key": key, "rows": len(dataset), "teacher": str(teacher.path), "spec": asdict(spec),
                    "shards": shards}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))  # fsynced with the rest by the swap

    @classmethod
    def _read(cls, folder: Path, key: str, reused: bool = True) -> "TeacherCache":
        manifest = json.loads((folder / "manifest.json").read_text())
        parts: dict[str, list[np.ndarray]] = {}
        for shard in manifest["shards"]:
            for tensor_name, value in _memory_map(folder / shard["name"]).items():
                parts.setdefault(tensor_name, []).append(value)
        logits = np.concatenate([np.asarray(p) for p in parts.pop("logits")])
        hidden = {int(k.split(".")[1]): ShardedRows(v) for k, v in parts.items() if k.startswith("hidden.")}
        attention = {int(k.split(".")[1]): ShardedRows(v) for k, v in parts.items() if k.startswith("attention.")}
        return cls(key, logits, hidden, attention, reused=reused)


def _rank_batches(rows: int, batch_size: int, world: World) -> list[list[np.ndarray]]:
    """The one-process run's batches of a shard, split into contiguous runs, one per rank."""
    batches = list(sequential_batches(rows, batch_size))
    return [[batches[i] for i in part] for part in np.array_split(np.arange(len(batches)), world.size)]


def _gather(tensors: dict[str, mx.array], part_rows: int, shard_rows: int, batch_size: int,
            world: World) -> dict[str, mx.array]:
    """Every rank's part of a shard, in rank order (what one process would have computed). The
    parts are padded to one length for ``all_gather``, which needs equal shapes."""
    parts = [sum(len(b) for b in part) for part in _rank_batches(shard_rows, batch_size, world)]
    assert parts[world.rank] == part_rows
    longest = max(parts)
    out = {}
    for name, values in tensors.items():
        values = values[:part_rows]
        padded = mx.pad(values, [(0, longest - values.shape[0])] + [(0, 0)] * (values.ndim - 1))
        gathered = mx.distributed.all_gather(padded, group=world.group)
        out[name] = mx.concatenate([gathered[r * longest: r * longest + n] for r, n in enumerate(parts)])
    mx.eval(out)
    return out


def _damage(folder: Path, rows: int) -> str | None:
    """Why a finished cache cannot be trusted (a truncated or altered shard, a manifest from an
    older version), or None when every shard has the size and checksum its manifest recorded."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        shards = manifest["shards"]
        if manifest.get("rows") != rows or not all(isinstance(s, dict) for s in shards):
            return "its manifest does not describe this data"
    except (OSError, ValueError, KeyError, TypeError):
        return "its manifest cannot be read"
    for shard in shards:
        path = folder / shard["name"]
        if not path.exists():
            return f"{shard['name']} is missing"
        size = path.stat().st_size
        if size != shard["bytes"]:
            return f"{shard['name']} has {size:,} bytes, {shard['bytes']:,} expected"
        if sha256_file(path) != shard["sha256"]:
            return f"{shard['name']} does not match its checksum"
    return None
