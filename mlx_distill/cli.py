"""Command line: ``python -m mlx_distill <command>``.

Only this layer composes the MLX side with the torch side (``export/``), and it imports each side
lazily inside its command, so ``predict`` never pays for torch and ``export`` never for mlx.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_info(args: argparse.Namespace) -> int:
    from mlx_distill.runtime import runtime_info

    info = runtime_info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from mlx_distill.data import read_texts
    from mlx_distill.predict import TextClassifier
    from mlx_distill.runtime import select_device

    texts = list(args.texts)
    if args.file:
        texts += read_texts(args.file)
    if not texts:
        print("error: give texts as arguments or with --file", file=sys.stderr)
        return 2
    select_device()
    classifier = TextClassifier(args.model_dir, max_length=args.max_length, batch_size=args.batch_size)
    for prediction in classifier.predict(texts):
        if args.json:
            print(json.dumps(prediction.to_json(), ensure_ascii=False))
        else:
            ranked = sorted(prediction.probs.items(), key=lambda kv: -kv[1])
            shown = "  ".join(f"{name} {p:.3f}" for name, p in ranked[:3])
            print(f"{prediction.label:<16} [{shown}]  {prediction.text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlx_distill", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="versions, device and BLAS in use")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=_cmd_info)

    predict = sub.add_parser("predict", help="classify texts with a classifier folder")
    predict.add_argument("model_dir", type=Path, help="Hugging Face-format classifier folder")
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--file", type=Path, help="texts from a .jsonl/.csv (text field) or a plain file, one per line")
    predict.add_argument("--json", action="store_true", help='one JSON object per text: {"text", "label", "probs"}')
    predict.add_argument("--max-length", type=int, default=128, help="tokens per text (default 128)")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.set_defaults(run=_cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
