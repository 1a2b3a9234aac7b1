"""The wheel carries every data file the package reads at run time (users install wheels, not checkouts)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_templates_sample_and_metric_folders(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(tmp_path)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("synartifact_hf-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"synartifact_hf/hub_cards/{p.name}" for p in (ROOT / "hub_cards").glob("*.md")}
    sample = ROOT / "synartifact_hf" / "data" / "sample"
    expected |= {f"synartifact_hf/data/sample/{p.relative_to(sample).as_posix()}" for p in sample.rglob("*") if p.is_file()}
    for metric in ("artifact_f1", "artifact_iou"):
        folder = ROOT / "synartifact_hf" / "metrics" / metric
        expected |= {f"synartifact_hf/metrics/{metric}/{p.name}" for p in folder.iterdir() if p.is_file() and p.suffix != ".pyc"}
    assert len(expected) > 50
    assert sorted(expected - names) == []
