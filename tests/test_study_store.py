"""The study's database, folder pairing and report, without a server: what is stored, what is refused,
and the report folder (Fig. 9, tests, the ratings as a `datasets` folder) from a simulated study with a
known answer (model B scored higher)."""

from __future__ import annotations

import json
import random
import sqlite3
import threading

import pytest

from synartifact_hf.app.study.pairs import PairsError, StudyPairs
from synartifact_hf.app.study.store import Refused, StudyMismatchError, StudyStore
from synartifact_hf.cli import main


@pytest.fixture(scope="module")
def pairs(study_folders):
    return StudyPairs(*study_folders)


@pytest.fixture
def store(pairs, tmp_path):
    store = StudyStore(tmp_path / "study.sqlite")
    assert store.bind(pairs.items, pairs.models) is True
    return store


def test_pairs_items_models_and_images_that_do_not_tell_the_model(pairs):
    assert len(pairs.items) == 12 and pairs.items[0].item_id == "p00000-i000"
    assert pairs.models == {"A": "tiny-sd", "B": "tiny-sd + LoRA lora"}
    a, b = pairs.images("p00003-i001")
    assert a.size == b.size == (256, 256)  # B's 320 px brought to A's size
    assert a.info == {} and b.info == {}  # the PNG text chunks naming the model are gone
    import io

    import pyarrow.parquet as pq
    from PIL import Image

    table = pq.read_table(pairs.folders["A"] / "data" / "train-00000-of-00001.parquet").to_pylist()
    row = next(r for r in table if r["item_id"] == "p00003-i001")
    source = Image.open(io.BytesIO(row["image"]["bytes"]))
    assert source.text and "tiny-sd" in source.text["parameters"]  # ... which the folder's image has
    assert a.tobytes() == source.convert("RGB").tobytes()


def test_bind_is_idempotent_and_refuses_another_study(pairs, store, study_folders, tmp_path):
    assert store.bind(pairs.items, pairs.models) is False
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other = pairs.items[:-1]
    with pytest.raises(StudyMismatchError, match="holds another study"):
        store.bind(other, pairs.models)
    # the CLI says so before serving anything
    code = main(["study", "serve", "--a", str(study_folders[0]), "--b", str(study_folders[0].parent / "nope"),
                 "--db", str(store.path)])
    assert code == 1


def test_each_rater_gets_an_own_order_and_sides(store, pairs):
    raters = store.add_raters(6, rng=random.Random(0))
    with sqlite3.connect(store.path) as db:
        orders = [tuple(r[0] for r in db.execute("SELECT item_id FROM assignments WHERE rater_id = ? "
                                                  "ORDER BY position", (rater_id,))) for rater_id, _ in raters]
        lefts = [r[0] for r in db.execute("SELECT left_model FROM assignments")]
        hashes = [r[0] for r in db.execute("SELECT token_sha256 FROM raters")]
    assert all(sorted(o) == sorted(i.item_id for i in pairs.items) for o in orders)
    assert len(set(orders)) == 6
    assert 0.3 < lefts.count("A") / len(lefts) < 0.7
    assert not any(token in hashes for _, token in raters)  # only hashes are stored


def _answer(store, token, left, right, fewer=None):
    now = store.current(token)
    return now, store.submit(token, now.item.item_id, left, right, fewer)


def test_submit_stores_two_rows_mapped_to_models_then_shows_the_next(store):
    ((rater_id, token),) = store.add_raters(1)
    now, after = _answer(store, token, 6, 2, "left")
    assert (after.done, after.total) == (1, 12) and after.item.item_id != now.item.item_id
    rows = store.ratings()
    assert [(r["side"], r["score"], r["fewer_artifacts"]) for r in rows] == [("left", 6, 1), ("right", 2, 0)]
    assert rows[0]["model"] == now.left_model and {r["model"] for r in rows} == {"A", "B"}
    assert {r["rater_id"] for r in rows} == {rater_id}
    _, _ = _answer(store, token, 3, 3, "same")
    _, _ = _answer(store, token, 4, 5)
    assert [r["fewer_artifacts"] for r in store.ratings()[2:]] == [0, 0, None, None]


@pytest.mark.parametrize("case", ["replay", "unknown item", "not shown", "score 0", "score 8", "score 3.5",
                                  "score '5'", "score True", "no score", "bad fewer", "unknown token",
                                  "empty token", "huge token", "revoked"])
def test_bad_submissions_are_refused_and_store_nothing(store, case):
    (first, token), (second, other) = store.add_raters(2)
    shown, after = _answer(store, token, 5, 5)
    item = after.item.item_id
    not_shown = next(i for i in store.items() if i not in (item, shown.item.item_id))
    args = {"replay": (token, shown.item.item_id, 5, 5, None), "unknown item": (token, "p99999-i000", 5, 5, None),
            "not shown": (token, not_shown, 5, 5, None), "score 0": (token, item, 0, 5, None),
            "score 8": (token, item, 5, 8, None), "score 3.5": (token, item, 3.5, 5, None),
            "score '5'": (token, item, "5", 5, None), "score True": (token, item, True, 5, None),
            "no score": (token, item, None, 5, None), "bad fewer": (token, item, 5, 5, "both"),
            "unknown token": ("not-a-token", item, 5, 5, None), "empty token": ("", item, 5, 5, None),
            "huge token": ("x" * 10_000, item, 5, 5, None), "revoked": (other, item, 5, 5, None)}[case]
    if case == "revoked":
        store.revoke(second)
    before = store.ratings()
    with pytest.raises(Refused) as refused:
        store.submit(*args)
    message = str(refused.value)
    assert message and "Traceback" not in message
    assert store.ratings() == before
    expected = {"replay": "already rated", "unknown item": "Unknown item", "not shown": "not the item",
                "revoked": "withdrawn", "bad fewer": "Fewer artifacts", "unknown token": "not valid",
                "empty token": "not valid", "huge token": "not valid"}.get(case, "score from 1 to 7")
    assert expected in message


def test_the_database_itself_refuses_out_of_range_scores(store):
    store.add_raters(1)
    with sqlite3.connect(store.path) as db, pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        db.execute("INSERT INTO ratings(rater_id, item_id, side, model, score, time) "
                   "VALUES (1, 'p00000-i000', 'left', 'A', 9, 'now')")


def test_concurrent_double_submissions_store_one(store):
    ((_, token),) = store.add_raters(1)
    item = store.current(token).item.item_id
    outcomes = []

    def submit():
        try:
            store.submit(token, item, 4, 6, None)
            outcomes.append("stored")
        except Refused:
            outcomes.append("refused")

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 7 + ["stored"]
    assert len(store.ratings()) == 2


def test_folders_that_do_not_pair_are_refused(study_folders, generation_folder, tmp_path):
    dir_a = study_folders[0]
    other_seeds = generation_folder(tmp_path / "other", "tiny-sd", 32, 90, seed=1)
    with pytest.raises(PairsError, match=r"do not hold the same \(item_id, prompt, seed\) triples: 12 only in A"):
        StudyPairs(dir_a, other_seeds)
    with pytest.raises(PairsError, match="--b .*missing: no such folder"):
        StudyPairs(dir_a, tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PairsError, match="--b .*empty: not a readable image dataset folder"):
        StudyPairs(dir_a, tmp_path / "empty")
    import datasets

    datasets.Dataset.from_dict({"item_id": ["p00000-i000"], "prompt": ["x"]}).to_parquet(
        str(tmp_path / "columns" / "data" / "train-00000-of-00001.parquet"))
    with pytest.raises(PairsError, match="no column\\(s\\) seed, image"):
        StudyPairs(tmp_path / "columns", dir_a)


def test_report_folder_from_a_simulated_study(store, tmp_path):
    rng = random.Random(7)
    raters = store.add_raters(4, rng=rng)
    for _, token in raters:
        for _ in range(12):
            now = store.current(token)
            quality = {"A": 3, "B": 5}  # B is better; raters roughly agree
            score = {m: max(1, min(7, quality[m] + rng.choice([-1, 0, 0, 1]))) for m in ("A", "B")}
            right = "B" if now.left_model == "A" else "A"
            fewer = rng.choice(["left" if now.left_model == "B" else "right", None])
            store.submit(token, now.item.item_id, score[now.left_model], score[right], fewer)
    out = tmp_path / "report"
    assert main(["study", "report", "--db", str(store.path), "--output", str(out)]) == 0
    summary = json.loads((out / "report.json").read_text())
    assert summary["ratings"] == 4 * 12 * 2 and summary["raters_with_ratings"] == 4
    assert summary["models"]["B"]["mean"] > summary["models"]["A"]["mean"] + 1.5
    low, high = summary["models"]["A"]["ci95"]
    assert low < summary["models"]["A"]["mean"] < high
    test = summary["paired_test"]
    assert test["prompts"] == 6 and test["p_value"] == pytest.approx(2 / 2**6) and test["rank_biserial"] == 1.0
    assert summary["fewer_artifacts"]["A"] == 0 and summary["fewer_artifacts"]["B"] > 10
    assert 0.4 < summary["agreement"]["krippendorff_alpha_ordinal"] <= 1.0
    assert [r["rated"] for r in summary["per_rater"]] == [12] * 4
    assert (out / "study.png").stat().st_size > 10_000

    import datasets

    from synartifact_hf.data.hub import validate_dataset_folder

    # by file: datasets keys load_dataset(folder)'s cache on the folder's name and card (see above)
    rows = datasets.load_dataset("parquet", data_files=str(out / "default" / "*.parquet"), split="train")
    assert len(rows) == 96 and set(rows["model"]) == {"A", "B"} and set(rows["score"]) <= set(range(1, 8))
    assert set(rows["rater"]) == {f"rater-{i:03d}" for i, _ in raters}
    assert set(rows["model_name"]) == {"tiny-sd", "tiny-sd + LoRA lora"}
    assert "default/train-00000-of-00001.parquet" in validate_dataset_folder(out)  # what push_to_hub sends
    card = (out / "README.md").read_text()
    assert "Krippendorff" in card and "study.png" in card
    assert main(["study", "report", "--db", str(store.path), "--output", str(out)]) == 1  # exists: refused
    assert len(datasets.load_dataset(str(out), split="train")) == 96  # cached under the folder's name
    (_, late), = store.add_raters(1)
    _answer(store, late, 2, 6)
    assert main(["study", "report", "--db", str(store.path), "--output", str(out), "--overwrite"]) == 0
    assert len(datasets.load_dataset(str(out), split="train")) == 98  # the card's dataset_info keeps the cache honest
    assert main(["study", "report", "--db", str(tmp_path / "missing.sqlite"), "--output", str(tmp_path / "x")]) == 1


def test_a_folder_named_like_another_loads_its_own_images(study_folders, generation_folder, tmp_path):
    # datasets keys load_dataset(folder)'s cache on the folder's name and card: a second "before" folder
    # would come back with the first one's rows; the study reads the files themselves
    twin = generation_folder(tmp_path / "elsewhere" / study_folders[0].name, "tiny-sd", 48, 90)
    a, b = StudyPairs(study_folders[0], twin).images("p00000-i000")
    assert a.size == b.size == (48, 48)


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    (tmp_path / "notes.sqlite").write_text("these are notes " * 100)
    with pytest.raises(ValueError, match="notes.sqlite is not a SQLite database"):
        StudyStore(tmp_path / "notes.sqlite")
    with pytest.raises(ValueError, match="is a folder"):
        StudyStore(tmp_path)
    assert main(["study", "invite", "--db", str(tmp_path / "missing.sqlite"), "--count", "1"]) == 1


def test_invite_makes_lists_and_revokes_links(store, capsys):
    assert main(["study", "invite", "--db", str(store.path), "--name", "alice", "--count", "1",
                 "--link-base", "https://study.example.org/"]) == 0
    out = capsys.readouterr().out
    links = [line.split(": ", 1)[1] for line in out.splitlines() if line.strip().startswith("rater-")]
    assert len(links) == 2 and all(link.startswith("https://study.example.org/?token=") for link in links)
    token = links[0].rsplit("=", 1)[1]
    assert store.current(token).total == 12
    assert main(["study", "invite", "--db", str(store.path), "--revoke", "1", "--list"]) == 0
    out = capsys.readouterr().out
    assert "Revoked rater-001" in out and "alice" in out and "(revoked)" in out
    with pytest.raises(Refused, match="withdrawn"):
        store.current(token)
    assert main(["study", "invite", "--db", str(store.path), "--revoke", "1"]) == 1  # already revoked
    assert "already revoked" in capsys.readouterr().out


def test_a_rater_who_rated_everything_is_told_so_and_can_add_nothing(store):
    ((_, token),) = store.add_raters(1)
    for _ in range(12):
        _, after = _answer(store, token, 4, 4)
    assert after.item is None and (after.done, after.total) == (12, 12)
    with pytest.raises(Refused, match="already rated"):
        store.submit(token, "p00000-i000", 4, 4)
    assert len(store.ratings()) == 24
