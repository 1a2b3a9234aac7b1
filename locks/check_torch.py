"""Fail the set-up when a virtualenv got a CUDA build of torch on a machine without an NVIDIA GPU.

The CPU build is what the locks pin (``torch==X+cpu``); a CUDA build here means the package source was
wrong (e.g. pip's find-links not carried over to uv): gigabytes of CUDA libraries nothing can use.
``make`` runs this after each install:  .venv/bin/python locks/check_torch.py
"""

from __future__ import annotations

import shutil
import sys


def main() -> int:
    import torch

    has_gpu = shutil.which("nvidia-smi") is not None
    if torch.version.cuda is not None and not has_gpu:
        print(f"{sys.executable}: torch {torch.__version__} is a CUDA {torch.version.cuda} build, and this machine "
              "has no NVIDIA GPU (no nvidia-smi). Give uv the CPU wheel's source: pip's find-links are carried over "
              "(locks/uv_flags.py); elsewhere set UV_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu "
              "and rerun make.", file=sys.stderr)
        return 1
    print(f"torch {torch.__version__} ({'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU'} build)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
