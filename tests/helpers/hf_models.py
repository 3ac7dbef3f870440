"""Build tiny transformers classifiers and save them as Hugging Face folders (test helper)."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers

LABELS = ["business", "sport", "weather"]

TINY_BERT = dict(
    vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
    max_position_embeddings=64, type_vocab_size=2,
)
TINY_MOBILEBERT = dict(
    vocab_size=120, hidden_size=32, embedding_size=16, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=24, intra_bottleneck_size=16, max_position_embeddings=64, num_feedforward_networks=2,
)


def perturb_(model: torch.nn.Module, scale: float = 0.1, seed: int = 0) -> None:
    """Add noise to every parameter so that no weight sits at its trivial init (ones/zeros)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


def save_hf_classifier(kind: str, out: Path, labels: list[str], seed: int = 0, **config) -> transformers.PreTrainedModel:
    """Create a random ``{Bert,MobileBert}ForSequenceClassification``, save it to ``out``, return it (eval, eager)."""
    torch.manual_seed(seed)
    id2label = {i: name for i, name in enumerate(labels)}
    label2id = {name: i for i, name in id2label.items()}
    if kind == "bert":
        cfg = transformers.BertConfig(id2label=id2label, label2id=label2id, **config)
        model = transformers.BertForSequenceClassification(cfg)
    elif kind == "mobilebert":
        cfg = transformers.MobileBertConfig(id2label=id2label, label2id=label2id, **config)
        model = transformers.MobileBertForSequenceClassification(cfg)
    else:
        raise ValueError(kind)
    perturb_(model, seed=seed)
    model.eval()
    model.config._attn_implementation = "eager"
    model.save_pretrained(out, safe_serialization=True)
    return model


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


def save_real_vocab_bert(out: Path, labels: list[str], minilm_dir: Path, layers: int = 2) -> Path:
    """A tiny random BERT classifier over the real uncased WordPiece vocabulary (30522 tokens), with
    all-MiniLM-L6-v2's tokenizer files beside it: a teacher that real texts can be fed to."""
    save_hf_classifier("bert", out, labels, vocab_size=30522, hidden_size=32, num_hidden_layers=layers,
                       num_attention_heads=4, intermediate_size=48, max_position_embeddings=64)
    copy_tokenizer(minilm_dir, out)
    return out


def copy_tokenizer(source: Path, out: Path) -> None:
    for name in TOKENIZER_FILES:
        (out / name).write_bytes((source / name).read_bytes())


def padded_batch(vocab_size: int, lengths: list[int], max_length: int, seed: int = 0):
    """Random ids with [CLS]=1-ish starts and zero padding; returns (ids, mask) as int64 torch tensors."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab_size, (len(lengths), max_length), generator=gen)
    mask = torch.zeros(len(lengths), max_length, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
        ids[row, n:] = 0
    return ids, mask
