"""Refuse a multi-process launch that would quietly do something else than asked.

``accelerate launch`` / ``torchrun`` start the processes; accelerate then decides, per process, what they
form. Two silent fall-backs (accelerate 1.x, ``accelerate/state.py``) would waste a run:

* Processes that do not join one group: on a machine without GPUs, ``accelerate launch --num_processes 2``
  without ``--use_cpu true`` (``ACCELERATE_USE_CPU=true``) makes every process a single-process run
  (``DistributedType.NO``), each training on all the data and writing the same ``output_dir``.
* A sharding config that is dropped: accelerate turns on FSDP only for GPU-like backends (CUDA, XPU,
  NPU, ...) and DeepSpeed only when not on CPU; with ``--use_cpu`` the FSDP / ZeRO files of
  ``examples/accelerate/`` become plain DDP (MULTI_CPU), so the memory plan of the config does not hold.

:func:`check_launch` turns both into an error that says what to change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["check_launch"]


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "false").lower() in ("1", "true", "yes")


def check_launch(state, environ: Mapping[str, str] | None = None) -> None:
    """Raise ``RuntimeError`` when the processes the launcher started do not form the run it asked for.

    Args:
        state: the ``AcceleratorState`` the run trains with (``trainer.accelerator.state``):
            ``num_processes`` and ``distributed_type``. Not a bare ``PartialState``: only
            AcceleratorState turns MULTI_GPU into FSDP, so a PartialState of a valid FSDP run on GPUs
            reads MULTI_GPU.
        environ: the launcher's environment (default ``os.environ``): ``WORLD_SIZE`` (set by
            ``torchrun`` / ``accelerate launch``), ``ACCELERATE_USE_FSDP``, ``ACCELERATE_USE_DEEPSPEED``.
    """
    env = os.environ if environ is None else environ
    kind = getattr(state.distributed_type, "value", str(state.distributed_type))
    launched = int(env.get("WORLD_SIZE", "1") or 1)
    if launched > 1 and state.num_processes != launched:
        raise RuntimeError(
            f"{launched} processes were launched (WORLD_SIZE={launched}) but accelerate sees {state.num_processes} "
            f"({kind}): each would train alone on all the data and write the same output. Without GPUs, pass "
            "--use_cpu true (or set ACCELERATE_USE_CPU=true) so that the processes form one gloo group (DDP)"
        )
    for flag, wanted in (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DEEPSPEED")):
        if _flag(env, flag) and kind != wanted:
            raise RuntimeError(
                f"The accelerate config asks for {wanted} ({flag}=true) but this run is {kind}: accelerate enables "
                f"{'FSDP only on GPU-like devices' if wanted == 'FSDP' else 'DeepSpeed only off CPU'} and otherwise "
                "falls back to plain data parallelism, without the sharding the config promises. Run it on GPUs, "
                "or launch without the config (on CPU: accelerate launch --multi_gpu --num_processes N ... --use_cpu true)"
            )
