"""Print the uv options that carry this machine's pip settings over to uv (uv reads no pip configuration).

``make`` puts the output on its ``uv pip compile / sync / install`` lines, so uv takes packages from the
same places pip would: pip's ``find-links`` (e.g. a folder of CPU torch wheels; without it uv fetches the
multi-GB CUDA torch from the registry) and ``index-url`` / ``extra-index-url`` (with pip's rule of the best
version across all indexes: uv's default would take a package only from the first index that has it). pip's
``constraint`` files go to ``uv pip install`` only (``make test-latest``): a committed lock must not depend
on one machine's caps, and ``uv pip sync`` resolves nothing.

Read from ``pip config list`` (pip's files and its PIP_* environment variables) and from PIP_* directly when
pip itself is absent; the environment wins over pip's ``[install]`` section, which wins over ``[global]``.
Nothing set: nothing printed. Nothing here names a machine's path: the paths are whatever pip is given.

    python3 locks/uv_flags.py sync      # options for `uv pip sync`
    python3 locks/uv_flags.py compile   # options for `uv pip compile` (make lock)
    python3 locks/uv_flags.py install   # options for `uv pip install` (make test-latest; adds constraints)
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

# pip option -> (uv flag, passed to `uv pip install` only)
OPTIONS = {
    "find-links": ("--find-links", False),
    "index-url": ("--index-url", False),
    "extra-index-url": ("--extra-index-url", False),
    "constraint": ("--constraint", True),
}
PRIORITY = {":env:": 0, "install": 1, "global": 2}  # lower wins


def pip_settings() -> dict[str, str]:
    """pip's effective value for each option in OPTIONS (space-separated lists as pip writes them)."""
    found: dict[str, tuple[int, str]] = {}
    listing = ""
    for pip in ([sys.executable, "-m", "pip"], ["pip3"], ["pip"]):  # a uv-made virtualenv has no pip
        try:
            done = subprocess.run([*pip, "config", "list"], capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            listing = done.stdout
            break
    for line in listing.splitlines():
        key, sep, value = line.partition("=")
        section, _, option = key.rpartition(".")
        if not sep or option not in OPTIONS or section not in PRIORITY:
            continue
        value = value.strip().strip("'\"")
        rank = PRIORITY[section]
        if option not in found or rank < found[option][0]:
            found[option] = (rank, value)
    for option in OPTIONS:  # pip absent (or not reporting its environment): its variables still count
        value = os.environ.get("PIP_" + option.upper().replace("-", "_"))
        if value:
            found[option] = (-1, value)
    return {option: value for option, (_, value) in found.items()}


def uv_flags(command: str) -> list[str]:
    resolving = command == "install"
    settings = pip_settings()
    flags = []
    for option, (flag, install_only) in OPTIONS.items():
        if install_only and not resolving:
            continue
        for value in settings.get(option, "").split():
            flags += [flag, value]
    if "extra-index-url" in settings:
        flags += ["--index-strategy", "unsafe-best-match"]  # pip's rule: the best version over all indexes
    return flags


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("sync", "compile", "install"):
        print("usage: uv_flags.py sync|compile|install", file=sys.stderr)
        return 2
    print(shlex.join(uv_flags(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
