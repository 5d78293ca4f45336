"""``python -m exhunt.demo OUT_DIR [--scale X] [--seed N] [--clean]``: write the demo collection."""

from __future__ import annotations

import argparse
from pathlib import Path

from exhunt.demo.generator import DemoSpec, generate


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m exhunt.demo", description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--scale", type=float, default=1.0, help="benign traffic multiplier")
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--no-attack", action="store_true", help="benign traffic only")
    args = parser.parse_args()
    stats = generate(args.out, DemoSpec(scale=args.scale, seed=args.seed, attack=not args.no_attack))
    print(f"demo evidence in {args.out}: {stats['files']} files, {stats['lines']} log lines")


if __name__ == "__main__":
    main()
