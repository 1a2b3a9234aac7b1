"""The gradio side of the web app without a browser: the app's own upload-folder check, the API's output
names, the reward table's columns, and the bound on the sessions the server keeps in memory."""

from __future__ import annotations

import os

import pytest

gr = pytest.importorskip("gradio", reason="the web app needs gradio: pip install 'synartifact-hf[app]'")

from synartifact_hf.app.analysis import ArtifactAnalyzer, UploadError  # noqa: E402
from synartifact_hf.app.ui import (  # noqa: E402
    REWARD_COLUMNS,
    SESSIONS_KEPT,
    _read_uploads,
    _reward_rows,
    build_app,
    launch_app,
)
from synartifact_hf.taxonomy import NAMES  # noqa: E402


@pytest.fixture(scope="module")
def demo(tiny_llava_path):
    analyzer = ArtifactAnalyzer(str(tiny_llava_path), str(tiny_llava_path), max_new_tokens=4,
                                detection_max_new_tokens=4, device="cpu")
    return build_app(None, analyzer=analyzer)


def test_only_files_in_gradios_upload_folder_are_read(tmp_path):
    """gradio refuses such paths before the handler runs, so only a direct call reaches this check."""
    folder = gr.utils.get_upload_folder()
    os.makedirs(folder, exist_ok=True)
    inside = os.path.join(folder, f"synartifact-test-{os.getpid()}.png")
    with open(inside, "wb") as handle:
        handle.write(b"some bytes")
    secret = tmp_path / "secret.txt"
    secret.write_text("server file")
    link = os.path.join(folder, f"synartifact-link-{os.getpid()}.png")
    os.symlink(secret, link)  # inside by name, outside once resolved
    try:
        assert _read_uploads([inside]) == [(os.path.basename(inside), b"some bytes")]
        assert _read_uploads([(inside, "caption")])[0][1] == b"some bytes"  # gallery items are (path, caption)
        for path in (str(secret), link, os.path.join(folder, "..", "..", str(secret).lstrip("/"))):
            with pytest.raises(UploadError, match="was not uploaded to this app"):
                _read_uploads([path])
    finally:
        os.remove(inside)
        os.remove(link)


def test_api_outputs_have_names_not_generated_ones(demo):
    returns = demo.get_api_info()["named_endpoints"]["/analyze"]["returns"]
    labels = [r["label"] for r in returns]
    assert not [label for label in labels if label.startswith("value_")], labels
    assert len(set(labels)) == len(labels)
    assert {"Status", "Results table", "Verdict", "Reward", "Reward terms"} <= set(labels)


def test_reward_table_has_one_column_per_quantity():
    reward = {"no_artifacts_term": 0.8, "artifact_terms": {name: 0.5 for name in NAMES[:-1]}, "alpha": 0.1}
    rows = _reward_rows(reward)
    assert REWARD_COLUMNS == ("term", "score", "contribution to r")
    assert all(len(row) == len(REWARD_COLUMNS) for row in rows)
    assert [row[0] for row in rows] == [NAMES[-1], *NAMES[:-1]]
    assert rows[1][1:] == [0.5, -0.05] and rows[0][1:] == [0.8, 0.8]


def test_launch_bounds_the_sessions_kept_in_memory(demo):
    from synartifact_hf.app.serving import free_port

    launch_app(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        assert demo.state_session_capacity == SESSIONS_KEPT < 10_000  # gradio's default keeps 10,000
    finally:
        demo.close()
