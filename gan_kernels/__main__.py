"""Command line: ``python -m gan_kernels {bench,demo,info}`` (also installed as ``gan-kernels``)."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def _info(_args) -> int:
    import torch

    import gan_kernels as gk
    from gan_kernels import _registry

    print(f"gan_kernels {gk.__version__}, torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    for name in _registry.BACKENDS:
        reason = _registry._reason(name)
        print(f"  {name:<10} {'available' if reason is None else 'unavailable: ' + reason}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gan_kernels", description="gan_kernels benchmarks and demo")
    sub = parser.add_subparsers(dest="command")

    from .bench import demo, run

    p = sub.add_parser("bench", help="time the ops, their host cost per call and whole critic steps against "
                                     "plain PyTorch; write JSON, CSV, PNG")
    run.add_arguments(p)
    p.set_defaults(func=run.main)
    p = sub.add_parser("demo", help="a few WGAN-GP steps on 8 Gaussians: fastest back end vs reference")
    demo.add_arguments(p)
    p.set_defaults(func=demo.main)
    p = sub.add_parser("info", help="versions and which back ends are available here, and why not")
    p.set_defaults(func=_info)

    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
