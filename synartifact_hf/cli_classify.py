"""`synartifact-hf classify PATH... --model M --output results.jsonl`: classify images to JSON lines.

PATH may be an image file, a folder (searched recursively for image files; symlinks leading outside
it are skipped) or a built dataset folder (``synartifact-hf build-dataset``: parquet shards with an
``image`` column, read with ``datasets``). Each image gives one JSON line, written and flushed as soon
as its batch is done::

    {"image": "/abs/path/a.png", "labels": [...], "has_artifacts": true, "other_artifacts": null,
     "generated_text": "1. ...", "parse_issues": [], "scores": {...}}      # scores with --scores
    {"image": "/abs/path/broken.png", "error": "ValueError: Cannot read ... as an image: ..."}

Dataset rows are keyed ``<folder>::<config>/<split>/<image_id>``. Re-running with the same
``--output`` skips every image already in the file (results and errors alike), so a crashed run resumes
where it stopped; a half-written last line is dropped first. The run ends with a summary of the whole
output file: images per label, images with/without artifacts, unparsed answers, errors.

``--model`` may also be the URL of an OpenAI-compatible server ending in ``/v1`` (vLLM, SGLang, TGI,
``transformers serve``; :mod:`synartifact_hf.backends`): ``--concurrency`` requests in flight, each
retried after connection errors, timeouts, 429 and 5xx. An image the server still does not answer gets
no line (an unreadable image gets its error line as above); the run then exits 1, and the same command
run again classifies exactly those.

Example (a tiny random model: plumbing only, its labels are noise)::

    python -c "from synartifact_hf.tiny_models import build_tiny_llava; build_tiny_llava('tiny-llava')"
    synartifact-hf classify images/ --model tiny-llava --batch-size 8 --scores --output results.jsonl
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders, or built dataset folders")
    from .backends import MODEL_HELP, add_served_arguments

    parser.add_argument("--model", required=True, help=MODEL_HELP)
    parser.add_argument("--output", required=True, help="JSON-lines file to write (appended to; resumable)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per generate() call (default: %(default)s)")
    parser.add_argument("--scores", action="store_true", help="also write the 14-option scores (scoring module)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="answer length cap (default: %(default)s)")
    parser.add_argument("--instruction-file", help="text file with the instruction (default: the paper's Fig. 11)")
    parser.add_argument("--config", default=None,
                        help="config of a built dataset folder to read (default: its first, 'default')")
    parser.add_argument("--split", action="append", default=None,
                        help="split(s) of a built dataset folder to read (repeatable; default: all)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda:0 or cpu (default: the first GPU if there is one, else CPU)")
    add_served_arguments(parser)


# ----------------------------------------------------------------------------------------------
# Output


def iter_done(output: Path) -> Iterator[dict]:
    """The records already in ``output``, one at a time; a half-written last line (crash mid-write) is
    removed from the file first."""
    from .scaleout import cut_torn_tail, iter_records

    if not output.exists():
        return
    cut_torn_tail(output)
    for _, _, record in iter_records(output, "image"):
        yield record


def read_done(output: Path) -> list[dict]:
    """:func:`iter_done` as a list (holds every record: for small files and tests)."""
    return list(iter_done(output))


def summarize(records: Iterable[dict]) -> dict:
    """Counts over ``records`` in one pass, holding one record at a time (the output may be millions
    of lines: the summary must not undo the streamed merge)."""
    summary = {"images": 0, "errors": 0, "with_artifacts": 0, "without_artifacts": 0, "unparsed": 0}
    labels: Counter = Counter()
    for record in records:
        summary["images"] += 1
        if "error" in record:
            summary["errors"] += 1
            continue
        has = record.get("has_artifacts")
        summary["with_artifacts" if has is True else "without_artifacts" if has is False else "unparsed"] += 1
        labels.update(record.get("labels", []))
    summary["labels"] = dict(labels.most_common())
    return summary


def _print_summary(summary: dict, output: Path, new: int, skipped: int) -> None:
    print(f"\n{output}: {summary['images']} image(s) ({new} new, {skipped} already done), "
          f"{summary['errors']} error(s)")
    print(f"  with artifacts: {summary['with_artifacts']}, without: {summary['without_artifacts']}, "
          f"unparsed answers: {summary['unparsed']}")
    for label, count in summary["labels"].items():
        print(f"  {count:6d}  {label}")


# ----------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from .backends import ServedClassifierError

    try:
        return _run(args)
    except ServedClassifierError as err:
        raise SystemExit(f"classify: error: {err}") from None


def _run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .backends import ClassificationFailed, open_classifier, served_settings
    from .image_sources import collect_items, read_source
    from .images import MAX_IMAGE_PIXELS
    from .scaleout import ShardedJsonLines, process_device, process_state, share

    if args.batch_size < 1:
        raise SystemExit("--batch-size must be at least 1")
    state = process_state()
    output = Path(args.output)
    instruction = Path(args.instruction_file).read_text(encoding="utf-8").strip() if args.instruction_file else None
    results = ShardedJsonLines(output, state, key="image")
    try:
        with state.main_process_first():  # datasets inputs: one process fills the cache, the others read it
            items = collect_items(args.paths, args.config, args.split)
        done_keys = results.prepare()
    except (FileNotFoundError, ValueError) as err:  # a missing path, a bad dataset folder or results file
        raise SystemExit(str(err)) from None
    todo = [(key, source) for key, source in items if key not in done_keys]
    mine = share(len(todo), state.process_index, state.num_processes)
    mine = todo[mine.start: mine.stop]

    # One bar, on the main process, counting every process's lines (read from their part files).
    bar = tqdm(total=len(todo), desc="classify", unit="img", disable=not state.is_main_process or not todo)
    if state.num_processes > 1:
        results.start_counting()
        others = 0
    unanswered, retries, name = 0, 0, None
    if mine:
        # A served classifier that cannot be used fails here, before anything is written.
        classifier = open_classifier(
            args.model, device=process_device(state, args.device), batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens, instruction=instruction, return_scores=args.scores,
            **served_settings(args),
        )
        with classifier, results.open() as out:
            for start in range(0, len(mine), classifier.batch_size):
                batch, images = [], []
                for key, source in mine[start: start + classifier.batch_size]:
                    try:
                        images.append(read_source(source, MAX_IMAGE_PIXELS))
                        batch.append(key)
                    except Exception as err:  # one unreadable image must not stop the run
                        results.write(out, {"image": key, "error": f"{type(err).__name__}: {err}"})
                        bar.update(1)
                if batch:
                    try:
                        records = classifier.classify(images)
                    except ClassificationFailed as err:  # no record for those: a rerun classifies them
                        records = err.results
                        unanswered += records.count(None)
                    for key, result in zip(batch, records):
                        if result is None:
                            continue
                        if not args.scores:
                            result.pop("scores", None)
                        results.write(out, {"image": key, **result})
                        bar.update(1)
                if state.num_processes > 1 and state.is_main_process:
                    now = results.written_by_others()
                    bar.update(now - others)
                    others = now
        retries, name = getattr(classifier, "retries", 0), classifier.identity
    results.finish(key for key, _ in items)
    if retries:
        print(f"classify: {retries} request(s) to {name} retried (process {state.process_index})", file=sys.stderr)
    if state.is_main_process:
        bar.update(bar.total - bar.n)
        bar.close()
        _print_summary(summarize(iter_done(output)), output, len(todo), len(items) - len(todo))
    if unanswered:
        print(f"classify: {unanswered} image(s) got no answer from {name} even after retries; nothing was "
              "written for them: run the same command again to classify them", file=sys.stderr)
        return 1
    return 0
