"""The study's SQLite database: items, raters (by token hash), each rater's order and sides, ratings.

One file, WAL mode, ``synchronous=FULL``: a rating is on disk when :meth:`StudyStore.submit` returns,
so the next item is shown only after the last one is stored, and a server killed at any moment loses
no answered submission (a submission's two rows go in one transaction: both or neither).

Tables:
    meta(key, value)                       study fingerprint, model descriptions, admin token hash
    items(item_id, prompt, prompt_index, seed)
    raters(rater_id, name, token_sha256, created, revoked)
    assignments(rater_id, position, item_id, left_model)    per-rater random order and sides
    ratings(rating_id, rater_id, item_id, side, model, score, fewer_artifacts, time)   one row per image rated

Tokens are stored as sha256 hashes only: a link is shown once, when it is made (``study serve``,
``study invite``); a lost link is revoked and replaced. Every way in is checked here, whatever the
caller: scores must be the integers 1-7 (CHECK constraints say it again), the item must be the one
the rater is shown now, a token must be known and not revoked; a refusal raises :class:`Refused` with a
message for the person and writes nothing.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .pairs import StudyItem, items_fingerprint

__all__ = ["MODELS", "SCALE", "SIDES", "Assignment", "Refused", "StudyMismatchError", "StudyStore"]

SCALE = range(1, 8)  # the paper's 1-7 quality scale
SIDES = ("left", "right")
MODELS = ("A", "B")
MAX_TOKEN_CHARS = 128

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items(
    item_id TEXT PRIMARY KEY, prompt TEXT NOT NULL, prompt_index INTEGER NOT NULL, seed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS raters(
    rater_id INTEGER PRIMARY KEY, name TEXT, token_sha256 TEXT NOT NULL UNIQUE, created TEXT NOT NULL, revoked TEXT);
CREATE TABLE IF NOT EXISTS assignments(
    rater_id INTEGER NOT NULL REFERENCES raters(rater_id), position INTEGER NOT NULL,
    item_id TEXT NOT NULL REFERENCES items(item_id), left_model TEXT NOT NULL CHECK (left_model IN ('A', 'B')),
    PRIMARY KEY (rater_id, position), UNIQUE (rater_id, item_id));
CREATE TABLE IF NOT EXISTS ratings(
    rating_id INTEGER PRIMARY KEY, rater_id INTEGER NOT NULL REFERENCES raters(rater_id),
    item_id TEXT NOT NULL REFERENCES items(item_id), side TEXT NOT NULL CHECK (side IN ('left', 'right')),
    model TEXT NOT NULL CHECK (model IN ('A', 'B')), score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 7),
    fewer_artifacts INTEGER CHECK (fewer_artifacts IN (0, 1)), time TEXT NOT NULL,
    UNIQUE (rater_id, item_id, side), UNIQUE (rater_id, item_id, model));
"""


class Refused(ValueError):
    """A submission or request that is not accepted; the message is meant for the person."""


class StudyMismatchError(ValueError):
    """The database belongs to another study (other folders / items)."""


@dataclass(frozen=True)
class Assignment:
    """What a rater is shown now: the item, which model is on the left, and their progress."""

    item: StudyItem | None  # None: all items rated
    left_model: str | None
    done: int
    total: int


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _score(value, side: str) -> int:
    if type(value) is not int or value not in SCALE:  # bool, float, str: refused, not coerced
        shown = "no score" if value is None else repr(value)
        raise Refused(f"The {side} image needs a score from 1 to 7 (got {shown}); nothing was stored.")
    return value


class StudyStore:
    """A study database at ``path`` (created on first use). Safe to use from many threads and
    processes at once: every call opens its own connection and writes in one immediate transaction."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"--db {self.path} is a folder; expected a SQLite file path")
        if not self.path.parent.is_dir():
            raise ValueError(f"--db {self.path}: folder {self.path.parent} does not exist")
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self):
        try:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        except sqlite3.Error as err:
            raise ValueError(f"--db {self.path}: cannot open as SQLite ({err})") from err
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        except sqlite3.DatabaseError as err:
            if "file is not a database" in str(err):
                raise ValueError(f"--db {self.path} is not a SQLite database") from err
            raise
        finally:
            db.close()

    @contextmanager
    def _write(self):
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- the study ---------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self._connect() as db:
            return dict(db.execute("SELECT key, value FROM meta"))

    def bind(self, items: list[StudyItem], models: dict[str, str]) -> bool:
        """Record the study's items and model descriptions on first use (returns True), or check that
        ``items`` are the ones recorded (returns False; :class:`StudyMismatchError` otherwise)."""
        fingerprint = items_fingerprint(items)
        with self._write() as db:
            known = db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
            if known is not None:
                if known[0] != fingerprint:
                    count = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
                    raise StudyMismatchError(
                        f"--db {self.path} holds another study ({count} items, not these {len(items)}: the "
                        "(item_id, prompt, seed) triples differ). Use a new --db for a new pair of folders.")
                return False
            db.executemany("INSERT INTO items VALUES (?, ?, ?, ?)",
                           [(i.item_id, i.prompt, i.prompt_index, i.seed) for i in items])
            db.executemany("INSERT INTO meta VALUES (?, ?)",
                           [("fingerprint", fingerprint), ("created", _now()),
                            *((f"model_{label}", name) for label, name in models.items())])
            return True

    def items(self) -> dict[str, StudyItem]:
        with self._connect() as db:
            return {row[0]: StudyItem(*row) for row in db.execute("SELECT * FROM items ORDER BY rowid")}

    def _require_items(self, db) -> list[str]:
        item_ids = [row[0] for row in db.execute("SELECT item_id FROM items ORDER BY rowid")]
        if not item_ids:
            raise ValueError(f"--db {self.path} has no study yet: start it with `synartifact-hf study serve --a DIR_A "
                             f"--b DIR_B --db {self.path}` (which also makes the first links)")
        return item_ids

    # -- tokens ------------------------------------------------------------------------------------
    def add_raters(self, count: int = 1, names: list[str] | None = None,
                   rng: random.Random | None = None) -> list[tuple[int, str]]:
        """Make ``count`` raters (or one per name), each with a random order of all items and random
        sides; returns ``(rater_id, token)`` pairs. The tokens are not stored, only their hashes."""
        names = list(names) if names else [None] * count
        rng = rng or random.SystemRandom()
        made = []
        with self._write() as db:
            item_ids = self._require_items(db)
            for name in names:
                token = secrets.token_urlsafe(24)
                rater_id = db.execute("INSERT INTO raters(name, token_sha256, created) VALUES (?, ?, ?)",
                                      (name, _hash(token), _now())).lastrowid
                order = list(item_ids)
                rng.shuffle(order)
                db.executemany("INSERT INTO assignments VALUES (?, ?, ?, ?)",
                               [(rater_id, position, item_id, rng.choice(MODELS))
                                for position, item_id in enumerate(order)])
                made.append((rater_id, token))
        return made

    def new_admin_token(self) -> str:
        """A new admin token (the previous one stops working)."""
        token = secrets.token_urlsafe(24)
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('admin_token_sha256', ?)", (_hash(token),))
        return token

    def has_admin_token(self) -> bool:
        return "admin_token_sha256" in self.meta()

    def check_admin(self, token) -> None:
        known = self.meta().get("admin_token_sha256")
        if not isinstance(token, str) or not token or known is None or not secrets.compare_digest(_hash(token), known):
            raise Refused("This needs the study's admin link.")

    def revoke(self, rater_id: int) -> None:
        with self._write() as db:
            if db.execute("UPDATE raters SET revoked = ? WHERE rater_id = ? AND revoked IS NULL",
                          (_now(), int(rater_id))).rowcount == 0:
                known = db.execute("SELECT revoked FROM raters WHERE rater_id = ?", (int(rater_id),)).fetchone()
                raise ValueError(f"rater {rater_id} " + ("was already revoked" if known else "does not exist"))

    def _rater(self, db, token) -> int:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise Refused("This link is not valid: open the personal link you were given.")
        row = db.execute("SELECT rater_id, revoked FROM raters WHERE token_sha256 = ?", (_hash(token),)).fetchone()
        if row is None:
            raise Refused("This link is not valid: open the personal link you were given.")
        if row[1] is not None:
            raise Refused("This link has been withdrawn by the study's organiser; nothing more can be rated with it.")
        return row[0]

    # -- rating --------------------------------------------------------------------------------------
    @staticmethod
    def _current(db, rater_id: int) -> Assignment:
        total = db.execute("SELECT COUNT(*) FROM assignments WHERE rater_id = ?", (rater_id,)).fetchone()[0]
        done = db.execute("SELECT COUNT(DISTINCT item_id) FROM ratings WHERE rater_id = ?", (rater_id,)).fetchone()[0]
        row = db.execute(
            "SELECT i.item_id, i.prompt, i.prompt_index, i.seed, a.left_model FROM assignments a "
            "JOIN items i ON i.item_id = a.item_id WHERE a.rater_id = ? AND NOT EXISTS "
            "(SELECT 1 FROM ratings r WHERE r.rater_id = a.rater_id AND r.item_id = a.item_id) "
            "ORDER BY a.position LIMIT 1", (rater_id,)).fetchone()
        if row is None:
            return Assignment(None, None, done, total)
        return Assignment(StudyItem(*row[:4]), row[4], done, total)

    def current(self, token) -> Assignment:
        """What the holder of ``token`` is to rate now (:class:`Refused` for a bad token)."""
        with self._connect() as db:
            return self._current(db, self._rater(db, token))

    def submit(self, token, item_id, left_score, right_score, fewer_artifacts=None) -> Assignment:
        """Store one item's two ratings (``fewer_artifacts``: ``None`` unanswered, ``"left"``, ``"right"``
        or ``"same"``) and return the next assignment. Refused: bad token, unknown item, an item that
        is not the one shown now (already rated: a replay or double submission), scores outside 1-7."""
        if fewer_artifacts in ("", None):
            fewer_artifacts = None
        elif fewer_artifacts not in ("left", "right", "same"):
            raise Refused(f"'Fewer artifacts' must be left, right, same or unanswered (got {fewer_artifacts!r}); "
                          "nothing was stored.")
        scores = {"left": _score(left_score, "left"), "right": _score(right_score, "right")}
        with self._write() as db:
            rater_id = self._rater(db, token)
            if not isinstance(item_id, str) or db.execute("SELECT 1 FROM items WHERE item_id = ?",
                                                          (item_id,)).fetchone() is None:
                raise Refused(f"Unknown item {str(item_id)[:80]!r}; nothing was stored.")
            if db.execute("SELECT 1 FROM ratings WHERE rater_id = ? AND item_id = ?", (rater_id, item_id)).fetchone():
                raise Refused("This item was already rated (a repeated submission); it is stored once and the "
                              "first answer counts.")
            now = self._current(db, rater_id)
            if now.item is None or now.item.item_id != item_id:
                raise Refused("This is not the item you are being shown; reload the page to continue.")
            other = "B" if now.left_model == "A" else "A"
            model = {"left": now.left_model, "right": other}
            rows = []
            for side in SIDES:
                fewer = None if fewer_artifacts is None else int(fewer_artifacts == side)
                rows.append((rater_id, item_id, side, model[side], scores[side], fewer, _now()))
            db.executemany("INSERT INTO ratings(rater_id, item_id, side, model, score, fewer_artifacts, time) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            return self._current(db, rater_id)

    # -- reading (admin / report) ------------------------------------------------------------------
    def _rows(self, sql: str) -> list[dict]:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(sql)]

    def ratings(self) -> list[dict]:
        """Every rating, joined with its item, in the order stored."""
        return self._rows(
            "SELECT r.rating_id, r.rater_id, r.item_id, i.prompt, i.prompt_index, i.seed, r.side, r.model, "
            "r.score, r.fewer_artifacts, r.time FROM ratings r JOIN items i ON i.item_id = r.item_id "
            "ORDER BY r.rating_id")

    def raters(self) -> list[dict]:
        """Each rater: id, name, created, revoked, items rated, items assigned."""
        return self._rows(
            "SELECT t.rater_id, t.name, t.created, t.revoked, "
            "(SELECT COUNT(DISTINCT item_id) FROM ratings r WHERE r.rater_id = t.rater_id) AS rated, "
            "(SELECT COUNT(*) FROM assignments a WHERE a.rater_id = t.rater_id) AS assigned "
            "FROM raters t ORDER BY t.rater_id")
