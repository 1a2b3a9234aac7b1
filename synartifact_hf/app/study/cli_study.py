"""``synartifact-hf study``: the paper's user study of two generators as a web app.

    synartifact-hf study serve --a DIR_A --b DIR_B --db study.sqlite [--raters N] [--host 127.0.0.1 --port 7860]
    synartifact-hf study invite --db study.sqlite [--count N | --name NAME ...] [--revoke RATER] [--list] [--admin]
    synartifact-hf study report --db study.sqlite --output DIR [--push-to-hub REPO]

``serve`` binds the database to the two eval-generator folders on first use, makes the admin link and
``--raters`` personal links, and serves the rating page. Links are printed once (only their hashes are
stored); ``invite`` makes more, revokes one, or lists raters with their progress, also while the server
runs. ``report`` reads the database file directly: whoever holds the file holds every rating, so it
takes no token; the admin token guards the same numbers on the web page.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_PORT = 7860


def _add_links(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--link-base", default=None,
                        help="address raters open, e.g. https://study.example.org (default http://HOST:PORT)")
    parser.add_argument("--links-file", default=None,
                        help="also append the new links to this file (created readable by you only)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="study_command", metavar="{serve,invite,report}", required=True)
    serve = sub.add_parser("serve", help="serve the rating page (makes the study and the first links)")
    serve.add_argument("--a", required=True, metavar="DIR_A", help="eval-generator folder of model A (e.g. before)")
    serve.add_argument("--b", required=True, metavar="DIR_B", help="eval-generator folder of model B (e.g. after)")
    serve.add_argument("--db", required=True, help="SQLite file of the study (created on first use)")
    serve.add_argument("--raters", type=int, default=0,
                       help="make sure at least this many personal links exist (new ones are printed)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1; 0.0.0.0 exposes the page to your network)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--share", action="store_true", help="also open a public gradio.live share link")
    serve.add_argument("--queue-size", type=int, default=None, help="requests that may wait (default 64)")
    _add_links(serve)

    invite = sub.add_parser("invite", help="make personal links, revoke one, list raters")
    invite.add_argument("--db", required=True, help="the study's SQLite file")
    invite.add_argument("--count", type=int, default=0, help="make this many new links")
    invite.add_argument("--name", action="append", default=[],
                        help="make a link for this rater (repeatable; the name stays in the database only)")
    invite.add_argument("--revoke", type=int, action="append", default=[], metavar="RATER",
                        help="withdraw a rater's link (their ratings so far stay)")
    invite.add_argument("--admin", action="store_true", help="make a new admin link (the old one stops working)")
    invite.add_argument("--list", action="store_true", help="list raters and their progress")
    invite.add_argument("--port", type=int, default=DEFAULT_PORT, help="the server's port, for the links")
    _add_links(invite)

    report = sub.add_parser("report", help="Fig. 9, Wilcoxon, Krippendorff's alpha, and all ratings as a dataset")
    report.add_argument("--db", required=True, help="the study's SQLite file")
    report.add_argument("--output", required=True, help="folder to write (a Hub-ready datasets folder)")
    report.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    report.add_argument("--push-to-hub", default=None, metavar="REPO",
                        help="also upload the folder as a dataset repository")
    report.add_argument("--public", action="store_true", help="with --push-to-hub: a public repository")
    report.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")


def _link_base(args, host: str = "127.0.0.1") -> str:
    if args.link_base:
        return args.link_base.rstrip("/")
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{args.port}"


def _hand_out(args, base: str, admin: str | None, raters: list[tuple[int, str]]) -> None:
    lines = [f"admin link (progress, report, export): {base}/?admin={admin}"] if admin else []
    lines += [f"rater-{rater_id:03d}: {base}/?token={token}" for rater_id, token in raters]
    if not lines:
        return
    print("New links (shown once; only their hashes are stored):\n  " + "\n  ".join(lines))
    if args.links_file:
        path = Path(args.links_file)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        print(f"  (also appended to {path})")


def _serve(args) -> int:
    from importlib.util import find_spec

    if find_spec("gradio") is None:  # gradio itself is imported once the folders and --db are checked
        print("study: error: the study app needs gradio; install it with `pip install 'synartifact-hf[app]'`")
        return 1
    from .pairs import PairsError, StudyPairs
    from .store import StudyMismatchError, StudyStore

    try:
        pairs = StudyPairs(args.a, args.b)
        store = StudyStore(args.db)
        created = store.bind(pairs.items, pairs.models)
    except (PairsError, StudyMismatchError, ValueError) as err:
        print(f"study serve: error: {err}")
        return 1
    admin = None if store.has_admin_token() else store.new_admin_token()
    existing = len(store.raters())
    made = store.add_raters(args.raters - existing) if args.raters > existing else []
    print(f"{'New' if created else 'Resumed'} study in {args.db}: {len(pairs.items)} items, "
          f"{existing + len(made)} rater link(s) ({existing} earlier).")
    _hand_out(args, _link_base(args, args.host), admin, made)
    from .ui import QUEUE_SIZE, build_study_app, launch_study

    demo = build_study_app(pairs, store, queue_size=args.queue_size or QUEUE_SIZE)
    launch_study(demo, host=args.host, port=args.port, share=args.share)
    return 0


def _invite(args) -> int:
    from .store import StudyStore

    try:
        if not Path(args.db).is_file():
            raise ValueError(f"--db {args.db}: no such file (start the study with `study serve` first)")
        store = StudyStore(args.db)
        for rater_id in args.revoke:
            store.revoke(rater_id)
            print(f"Revoked rater-{rater_id:03d}: their link no longer works; their ratings so far stay.")
        made = store.add_raters(len(args.name), names=args.name) if args.name else []
        made += store.add_raters(args.count) if args.count > 0 else []
        admin = store.new_admin_token() if args.admin else None
    except ValueError as err:
        print(f"study invite: error: {err}")
        return 1
    _hand_out(args, _link_base(args), admin, made)
    if args.list:
        for r in store.raters():
            print(f"rater-{r['rater_id']:03d} {r['name'] or '':<20} rated {r['rated']}/{r['assigned']}"
                  + ("  (revoked)" if r["revoked"] else ""))
    if not (args.revoke or made or admin or args.list):
        print("study invite: nothing to do (give --count, --name, --revoke, --admin or --list)")
        return 2
    return 0


def _report(args) -> int:
    from .report import study_report

    try:
        summary = study_report(args.db, args.output, overwrite=args.overwrite, push_to_hub=args.push_to_hub,
                               private=not args.public, token=args.token)
    except (ValueError, FileExistsError, RuntimeError, ConnectionError) as err:
        print(f"study report: error: {err}")
        return 1
    a, b = summary["models"]["A"], summary["models"]["B"]
    test = summary["paired_test"]
    alpha = summary["agreement"]["krippendorff_alpha_ordinal"]
    print(f"{summary['ratings']} ratings by {summary['raters_with_ratings']} rater(s). Mean score: "
          f"A {a['mean'] if a['mean'] is None else round(a['mean'], 2)}, "
          f"B {b['mean'] if b['mean'] is None else round(b['mean'], 2)}.")
    if test.get("p_value") is not None:
        print(f"Wilcoxon signed-rank over {test['prompts']} prompts: p = {test['p_value']:.4g}, "
              f"rank-biserial r = {test['rank_biserial']:+.3f}.")
    print("Krippendorff's alpha (ordinal): " + ("-" if alpha is None else f"{alpha:.3f}"))
    print(f"Wrote {args.output} (README.md, report.json, study.png, default/train-*.parquet)"
          + (f"; uploaded: {summary['pushed']}" if summary.get("pushed") else ""))
    return 0


def run(args: argparse.Namespace) -> int:
    return {"serve": _serve, "invite": _invite, "report": _report}[args.study_command](args)
