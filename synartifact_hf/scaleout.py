"""Work split over the processes of ``accelerate launch`` / ``torchrun``: which process does what, where
each one writes, and how the results come back together.

Used by ``classify`` (JSON lines), ``evaluate`` (gathered predictions) and curation (cached label
chunks); the pipeline itself knows nothing about processes. The rules:

- **Who**: :func:`process_state` is accelerate's ``PartialState`` (rank, world size, local rank,
  barriers). Without CUDA it is started with ``cpu=True`` whenever the launcher started several
  processes (``WORLD_SIZE`` > 1): plain ``PartialState()`` would see one process of one in each, and
  every process would do all the work; also when CPU is asked for (``ACCELERATE_USE_CPU``, or
  ``cpu=True`` from a training config). Training scripts use the same rule.
- **Where**: :func:`process_device` puts process *i* of a node on ``cuda:<local rank>`` (CPU without
  CUDA); a device given explicitly wins when there is one process.
- **Which share**: :func:`share` splits N items into contiguous, equal (±1), disjoint ranges in rank
  order, the same split as ``Dataset.shard(contiguous=True)`` / ``split_dataset_by_node``; every
  process computes it from the same inputs, so nothing is exchanged.
- **Part files** (:class:`ShardedJsonLines`): each process appends its records to
  ``<output>.part-<rank>`` and flushes each line. When all are done, the main process merges
  ``<output>`` and every part into ``<output>`` (one line per key, in input order; written through
  :func:`synartifact_hf.atomic.atomic_path`),
  then removes the parts. A rerun, with any number of processes, counts every record in ``<output>``
  and in any part (also parts of ranks that no longer exist) as done; a torn last line (a process
  killed mid-write) is cut off first. Multi-node runs need ``<output>`` on a filesystem all nodes share.

The merge is streamed: it keeps 8-byte key hashes and file offsets in arrays (about 40 bytes per line),
never the records, then copies the lines in order.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from .atomic import atomic_path

__all__ = [
    "ShardedJsonLines",
    "gather_in_order",
    "merge_json_lines",
    "process_device",
    "process_state",
    "share",
]


def process_state(cpu: bool = False):
    """accelerate's ``PartialState`` for this process. One rule for every command and script: CPU when asked
    (``cpu=True``, or ``ACCELERATE_USE_CPU``, which plain ``PartialState()`` ignores: only AcceleratorState
    reads it) or when the launcher started several processes and there is no CUDA (plain ``PartialState()``
    would then see one process of one in each)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    world = int(os.environ.get("WORLD_SIZE", "1"))
    cpu = cpu or parse_flag_from_env("ACCELERATE_USE_CPU") or (world > 1 and not torch.cuda.is_available())
    return PartialState(cpu=True) if cpu else PartialState()


def process_device(state, explicit: str | None = None) -> str | None:
    """The device this process runs the model on: ``explicit`` when there is one process, else
    ``cuda:<local rank>`` with CUDA, else CPU. ``None`` means "the pipeline's default"."""
    import torch

    if state.num_processes == 1:
        return explicit
    if torch.cuda.is_available():
        if explicit is not None and explicit != f"cuda:{state.local_process_index}":
            warnings.warn(f"ignoring device={explicit!r} on rank {state.process_index}: with several processes "
                          "each one uses cuda:<local rank>", stacklevel=2)
        return f"cuda:{state.local_process_index}"
    return "cpu"


def share(count: int, rank: int, world: int) -> range:
    """Process ``rank``'s contiguous share of ``count`` items (equal sizes ±1, rank order).

    >>> [list(share(5, r, 2)) for r in range(2)]
    [[0, 1, 2], [3, 4]]
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in 0..{world - 1}")
    base, extra = divmod(count, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def gather_in_order(local: list, state) -> list:
    """Every process's ``local`` list concatenated in rank order, on every process (pickled objects
    over torch.distributed; with :func:`share`'s contiguous shares this is input order)."""
    if state.num_processes == 1:
        return list(local)
    import torch.distributed as dist

    gathered: list = [None] * state.num_processes
    dist.all_gather_object(gathered, local)
    return [item for part in gathered for item in part]


# ----------------------------------------------------------------------------------------------
# JSON lines written by several processes


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def cut_torn_tail(path: Path) -> None:
    """Drop a half-written last line (a process killed mid-write); the file is rewritten atomically."""
    if not path.is_file():
        return
    size = path.stat().st_size
    if size == 0:
        return
    with path.open("rb") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        # Find the last newline from the end, a block at a time: the file may be large.
        end, block = size, 1 << 16
        keep = 0
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            end = start
    with path.open("rb") as src, atomic_path(path, "wb") as dst:
        remaining = keep
        while remaining:
            data = src.read(min(remaining, 1 << 20))
            dst.write(data)
            remaining -= len(data)


def iter_records(path: Path, key: str) -> Iterator[tuple[int, int, dict]]:
    """``(offset, length, record)`` for each complete line of a JSON-lines file.

    Raises ``ValueError`` naming the file and line of a line that is not a JSON object with ``key``.
    """
    offset = 0
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            length = len(line)
            if not line.endswith(b"\n"):
                return  # torn tail: not a record
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number} is not JSON ({err}); fix or remove that line to resume") from err
                if not isinstance(record, dict) or key not in record:
                    raise ValueError(f"{path}:{number} has no {key!r} key; is this a results file of this command?")
                yield offset, length, record
            offset += length


def merge_json_lines(output: str | os.PathLike, parts: list[Path], order: Iterable[str], key: str = "image") -> int:
    """Merge ``output`` (if it exists) and ``parts`` into ``output``: one line per ``record[key]``, in
    the order of ``order`` (keys not in ``order`` follow, in file order); the first copy of a key wins
    (``output`` first, then the parts in the given order). Written to a temporary file and renamed;
    the parts are removed afterwards. Returns the number of lines written.

    Memory: 8-byte hashes of ``order`` and (position, file, offset, length) per line, never the records.
    """
    import numpy as np

    output = Path(output)
    order_hashes = np.fromiter((_key_hash(k) for k in order), dtype=np.uint64)
    by_hash = np.argsort(order_hashes, kind="stable")
    sorted_hashes = order_hashes[by_hash]
    if len(sorted_hashes) > 1 and bool((sorted_hashes[1:] == sorted_hashes[:-1]).any()):
        raise ValueError("the input list holds the same key twice (or two keys share a 64-bit hash); dedupe it first")
    del order_hashes

    sources = ([output] if output.is_file() else []) + [p for p in parts if p.is_file()]
    hashes, files, offsets, lengths = array.array("Q"), array.array("H"), array.array("q"), array.array("q")
    for index, path in enumerate(sources):
        for offset, length, record in iter_records(path, key):
            hashes.append(_key_hash(str(record[key])))
            files.append(index)
            offsets.append(offset)
            lengths.append(length)
    line_hashes = np.array(hashes, dtype=np.uint64)
    position = np.full(len(line_hashes), -1, dtype=np.int64)
    if len(sorted_hashes):
        slot = np.minimum(np.searchsorted(sorted_hashes, line_hashes), len(sorted_hashes) - 1)
        known = sorted_hashes[slot] == line_hashes
        position[known] = by_hash[slot[known]]
    # Keys outside ``order`` go last, in file order; of several lines of one key the first wins.
    unknown = position < 0
    position[unknown] = len(sorted_hashes) + np.flatnonzero(unknown)
    _, first = np.unique(line_hashes, return_index=True)
    chosen = first[np.argsort(position[first], kind="stable")]

    handles = [path.open("rb") for path in sources]
    try:
        # fsync: the parts are deleted next, so the merged file must be on disk first.
        with atomic_path(output, "wb", fsync=True) as out:
            for i in chosen.tolist():
                handle = handles[files[i]]
                handle.seek(offsets[i])
                out.write(handle.read(lengths[i]))
    finally:
        for handle in handles:
            handle.close()
    for path in parts:
        path.unlink(missing_ok=True)
    return len(chosen)


class ShardedJsonLines:
    """One results file written by every process through its own part file; see the module docstring.

    Call order (every process): :meth:`prepare` (returns the keys already done), :meth:`open` and
    ``write`` records, then :meth:`finish` (merges on the main process).
    """

    def __init__(self, output: str | os.PathLike, state, key: str = "image"):
        self.output = Path(output)
        self.state = state
        self.key = key
        self._seen: dict[Path, tuple[int, int]] = {}  # part -> (bytes read, lines) for progress

    def part(self, rank: int) -> Path:
        return self.output.with_name(f"{self.output.name}.part-{rank:05d}")

    def parts(self) -> list[Path]:
        return sorted(self.output.parent.glob(f"{self.output.name}.part-*[0-9]"))

    @property
    def direct(self) -> bool:
        """One process writes ``output`` itself, as the single-process command always did."""
        return self.state.num_processes == 1

    def prepare(self) -> set[str]:
        """Cut torn tails (main process), then every process reads the same set of done keys."""
        self.output.parent.mkdir(parents=True, exist_ok=True)
        if self.state.is_main_process:
            for path in [self.output, *self.parts()]:
                cut_torn_tail(path)
        self.state.wait_for_everyone()
        done: set[str] = set()
        for path in [self.output, *self.parts()]:
            if path.is_file():
                done.update(str(record[self.key]) for _, _, record in iter_records(path, self.key))
        # Nobody appends before everyone has read: the shares depend on the done set.
        self.state.wait_for_everyone()
        return done

    def open(self):
        target = self.output if self.direct else self.part(self.state.process_index)
        return target.open("a", encoding="utf-8")

    @staticmethod
    def write(handle, record: dict) -> None:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()

    def written_by_others(self) -> int:
        """Lines other processes have added to their parts since :meth:`prepare` (for rank 0's progress
        bar; counts newlines incrementally, without parsing)."""
        total = 0
        for rank in range(self.state.num_processes):
            if rank == self.state.process_index:
                continue
            path = self.part(rank)
            if not path.is_file():
                continue
            read, lines = self._seen.get(path, (None, 0))
            size = path.stat().st_size
            if read is None:
                read = size  # lines present at the start were done before this run
            if size > read:
                with path.open("rb") as f:
                    f.seek(read)
                    lines += f.read(size - read).count(b"\n")
                read = size
            self._seen[path] = (read, lines)
            total += lines
        return total

    def start_counting(self) -> None:
        self._seen = {}
        self.written_by_others()

    def finish(self, order: Iterable[str]) -> None:
        """Wait for every process; the main process merges the parts (if any) into ``output``."""
        self.state.wait_for_everyone()
        if self.state.is_main_process:
            parts = self.parts()
            if parts:
                merge_json_lines(self.output, parts, order, key=self.key)
        self.state.wait_for_everyone()
