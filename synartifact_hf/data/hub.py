"""Publish a folder written by ``build-dataset`` to the Hugging Face Hub as a dataset repository.

:func:`validate_dataset_folder` checks the folder first (card YAML, every config's files present and
readable as parquet) so that a broken folder is refused locally, before anything is sent.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from ..cards import split_front_matter

__all__ = ["validate_dataset_folder", "push_dataset"]


def validate_dataset_folder(out_dir: str | Path) -> list[str]:
    """Check a built folder and return the files to upload (relative posix paths, sorted).

    Raises ``ValueError`` naming the file and what is wrong.
    """
    import pyarrow.parquet as pq
    import yaml

    root = Path(out_dir)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder (pass the OUT_DIR that build-dataset wrote)")
    card = root / "README.md"
    if not card.is_file():
        raise ValueError(f"{card}: missing; the folder has no dataset card (was it built by build-dataset?)")
    try:
        meta = yaml.safe_load(split_front_matter(card.read_text(encoding="utf-8"))[0]) or {}
    except (ValueError, yaml.YAMLError) as err:
        raise ValueError(f"{card}: the YAML block does not parse ({err})") from None
    configs = meta.get("configs")
    if not isinstance(configs, list) or not configs:
        raise ValueError(f"{card}: YAML has no 'configs:' list mapping configs to their data files")

    files = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    selected = {"README.md"}
    for entry in configs:
        name = entry.get("config_name") if isinstance(entry, dict) else None
        data_files = entry.get("data_files") if isinstance(entry, dict) else None
        if not name or not isinstance(data_files, list) or not data_files:
            raise ValueError(f"{card}: config entry {entry!r} needs config_name and data_files")
        for item in data_files:
            pattern = item.get("path") if isinstance(item, dict) else None
            if not isinstance(pattern, str):
                raise ValueError(f"{card}: config {name!r}: data_files entry {item!r} has no path")
            matched = [f for f in files if fnmatch.fnmatch(f, pattern)]
            if not matched:
                raise ValueError(f"{card}: config {name!r} split {item.get('split')!r}: no file matches {pattern!r}")
            for rel in matched:
                try:
                    pq.ParquetFile(root / rel).metadata  # noqa: B018 - reading the footer is the check
                except Exception as err:
                    raise ValueError(f"{root / rel}: not a readable parquet file ({err})") from None
            selected.update(matched)
    # Images the card links to (the class-distribution chart) travel with it.
    selected.update(f for f in files if f.endswith(".png") and "/" not in f)
    return sorted(selected)


def push_dataset(
    out_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    commit_message: str = "Upload SynArtifact-1K built by synartifact-hf",
) -> str:
    """Create the dataset repo ``repo_id`` (if needed) and upload the validated folder; returns the
    commit URL. ``endpoint`` defaults to ``HF_ENDPOINT`` / https://huggingface.co."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import validate_repo_id

    validate_repo_id(repo_id)
    files = validate_dataset_folder(out_dir)
    if constants.is_offline_mode():
        raise RuntimeError("HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it to push the dataset")
    api = HfApi(token=token, endpoint=endpoint)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(out_dir),
            repo_id=repo_id,
            repo_type="dataset",
            allow_patterns=files,
            commit_message=commit_message,
        )
    except HfHubHTTPError as err:
        raise RuntimeError(f"The Hub at {api.endpoint} refused the upload of {out_dir} to {repo_id}: {err}") from err
    except Exception as err:
        if not _is_network_error(err):
            raise
        raise ConnectionError(f"Could not reach the Hub at {api.endpoint} to upload {out_dir}: {err}") from err
    return getattr(commit, "commit_url", None) or str(commit)


def _is_network_error(err: BaseException) -> bool:
    # huggingface_hub's HTTP client changed over versions (requests, httpx, httpx2); match the
    # transport-level error by name instead of importing one of them.
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    return any(cls.__name__ in ("TransportError", "ConnectError", "ConnectionError") for cls in type(err).__mro__)
