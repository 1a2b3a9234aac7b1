"""SynArtifact-1K for ``datasets``: raw release reader, ``SynArtifact1K`` builder, Hub-ready export.

>>> from synartifact_hf.data import SAMPLE_DIR, scan_release
>>> scan_release(SAMPLE_DIR, progress=False).num_records
18
"""

from .builder import CONFIG_NAMES, SynArtifact1K, SynArtifact1KConfig, example_for, features_for
from .embedded_sample import SAMPLE_DIR, build_sample_dataset
from .export import BuildReport, build_dataset, card_statistics
from .hub import push_dataset, validate_dataset_folder
from .release import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ArtifactBox,
    Release,
    ReleaseError,
    ReleaseRecord,
    SkippedFile,
    parse_annotation,
    read_image_size,
    scan_release,
)
from .statistics import DatasetStatistics, compute_statistics

__all__ = [
    "CONFIG_NAMES",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "SAMPLE_DIR",
    "ArtifactBox",
    "BuildReport",
    "DatasetStatistics",
    "Release",
    "ReleaseError",
    "ReleaseRecord",
    "SkippedFile",
    "SynArtifact1K",
    "SynArtifact1KConfig",
    "build_dataset",
    "build_sample_dataset",
    "card_statistics",
    "compute_statistics",
    "example_for",
    "features_for",
    "parse_annotation",
    "push_dataset",
    "read_image_size",
    "scan_release",
    "validate_dataset_folder",
]
