"""Benchmark: the artifact reward's BERTScore step, ours vs bert_score, measured in one run.

Scores 256 realistic classifier answers against the 14 taxonomy phrases (paper Eq. 4 needs all
256 x 14 pairs) with the all-MiniLM-L6-v2 backbone at layer 6:

* ours: ``BERTScoreMatrix`` — the 14 references embedded once and cached (steady state of a DDPO run;
  the first, cold call is printed too), each answer encoded once, all pairs in one matching step;
* (a) naive: 14 ``bert_score`` calls, one per phrase, each over all answers;
* (b) flattened: one ``bert_score`` call over all 256 x 14 (answer, phrase) pairs.

All three use an already loaded model (``bert_score.BERTScorer``; loading time excluded) and the same
batch size and ``--threads`` torch threads (default 1). Each timing is the best of ``--repeats``
interleaved rounds (the machine may be shared). Targets (issue 6):
>= 15x vs (a), >= 1.0x vs (b). It also prints the largest |ours - bert_score| and re-checks every pair
that differs by more than the tolerance against ``bert_score`` on that pair alone (bert_score
zero-fills padded positions, so its batched values can sit slightly above the unpadded ones).

``bert_score`` 0.3.13 crashes on an empty answer under transformers 5, so the bert_score runs get the
non-empty answers only (ours scores all of them; an empty answer scores 0).

    python benchmarks/bench_reward.py            # 256 answers, CPU
    python benchmarks/bench_reward.py --n 1024 --device cuda
    python benchmarks/bench_reward.py --layer-study   # why MiniLM layer 6
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOL = 1e-5

CAPTIONS = [
    "The dog has three legs and its face is distorted.",
    "The text on the sign is unreadable.",
    "There are two identical clouds side by side.",
    "The horse's head is fused with the fence.",
    "The woman's left hand has six fingers.",
    "The lighting on the face does not match the sunset behind.",
    "The background is smeared and blurry.",
    "The cat's fur looks like plastic.",
    "A red apple on a wooden table.",
    "A photo of a golden retriever running on the beach.",
    "The shadows of the trees point in different directions.",
    "The bird is missing its beak.",
    "The building windows are melting into each other.",
    "An owl sitting on a branch at night, the scene is too bright.",
]
GARBAGE = [
    "",
    "   ",
    "I'm sorry, I cannot analyze this image.",
    "1. 1. 1. 1.",
    "asdf qwerty ###",
    "Yes.",
    "Artifacts artifacts artifacts artifacts artifacts artifacts.",
    "The answer is option 15.",
]


def realistic_answers(n: int = 256, seed: int = 0) -> list[str]:
    """A fixed mix of what a classifier answers: formatted label sets (half "No artifacts"), detection
    answers with boxes, label sets with an other-artifacts caption, free captions, garbage and empties."""
    from synartifact_hf.instructions import format_classification_answer, format_detection_answer
    from synartifact_hf.taxonomy import ARTIFACT_NAMES, OTHER_ARTIFACTS

    rng = random.Random(seed)
    plain = [n for n in ARTIFACT_NAMES if n != OTHER_ARTIFACTS]
    out = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.30:
            out.append(format_classification_answer([]))
        elif kind < 0.60:
            out.append(format_classification_answer(rng.sample(plain, rng.randint(1, 4))))
        elif kind < 0.72:
            out.append(format_classification_answer(rng.sample(plain, rng.randint(0, 2)), rng.choice(CAPTIONS)))
        elif kind < 0.82:
            boxes = []
            for label in rng.sample(plain, rng.randint(0, 2)):
                x, y = rng.random() * 0.6, rng.random() * 0.6
                boxes.append((label, (x, y, x + 0.3, y + 0.3)))
            out.append(format_detection_answer(boxes, rng.choice([None, rng.choice(CAPTIONS)])))
        elif kind < 0.94:
            out.append(rng.choice(CAPTIONS))
        else:
            out.append(GARBAGE[i % len(GARBAGE)])
    return out


def layer_study() -> None:
    """Why layer 6 of all-MiniLM-L6-v2: for answers naming one class (its name, each alias in a sentence,
    its explanation), how often the right phrase gets the highest F1, and the mean F1 of the right phrase
    vs the other 13."""
    import torch

    from synartifact_hf.bertscore import BERTScoreMatrix
    from synartifact_hf.taxonomy import CLASSES

    refs = [c.phrase for c in CLASSES]
    answers, truth = [], []
    for c in CLASSES:
        texts = [f"1. {c.name}."] + [f"The image shows {a}." for a in c.aliases if len(a) > 3]
        texts.append(f"There is an issue: {c.explanation}")
        answers += texts
        truth += [c.id] * len(texts)
    truth = torch.tensor(truth)
    rows = torch.arange(len(truth))
    print(f"layer study: {len(answers)} one-class answers x {len(refs)} phrases (F1)")
    for layer in range(1, 7):
        f1 = BERTScoreMatrix(num_layers=layer, device="cpu").score(answers, refs).f1
        right = f1[rows, truth]
        other = (f1.sum(dim=1) - right) / (len(refs) - 1)
        top1 = (f1.argmax(dim=1) == truth).float().mean().item()
        print(f"  layer {layer}: top-1 {top1:.1%}  right phrase {right.mean():.3f}  others {other.mean():.3f}  "
              f"margin {(right - other).mean():.3f}")


def best_of(repeats: int, fn):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="number of answers")
    parser.add_argument("--repeats", type=int, default=3, help="timings are the best of this many runs")
    parser.add_argument("--batch-size", type=int, default=64, help="encoder batch size, for all three")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 by default: on a shared machine, multi-threaded small "
                             "forward passes stall on descheduled threads and the timings become noise)")
    parser.add_argument("--layer-study", action="store_true", help="only print the MiniLM layer comparison")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    if args.layer_study:
        layer_study()
        return 0

    import torch
    from bert_score import BERTScorer

    if args.device == "cpu" and args.threads > 0:
        torch.set_num_threads(args.threads)

    from synartifact_hf.bertscore import BERTScoreMatrix, minilm_path
    from synartifact_hf.taxonomy import CLASSES

    refs = [c.phrase for c in CLASSES]
    answers = realistic_answers(args.n, args.seed)
    nonempty = [i for i, a in enumerate(answers) if a.strip()]
    texts = [answers[i] for i in nonempty]
    print(f"{len(answers)} answers ({len(set(answers))} distinct, {len(answers) - len(texts)} empty) x "
          f"{len(refs)} phrases; all-MiniLM-L6-v2 layer 6 on {args.device}; torch threads {torch.get_num_threads()}; best of {args.repeats} rounds")

    ours = BERTScoreMatrix(num_layers=6, device=args.device, batch_size=args.batch_size)
    theirs = BERTScorer(model_type=str(minilm_path()), num_layers=6, device=args.device, batch_size=args.batch_size)
    ours.score(["warm-up"], ["warm-up"])  # loads the model
    theirs.score(["warm-up"], ["warm-up"])

    start = time.perf_counter()
    ours.score(answers, refs)  # first call: embeds and caches the references too
    t_cold = time.perf_counter() - start

    def naive():
        return torch.stack([torch.stack(theirs.score(texts, [r] * len(texts)), dim=-1) for r in refs], dim=1)

    def flattened():
        cands = [t for t in texts for _ in refs]
        return torch.stack(theirs.score(cands, refs * len(texts)), dim=-1).view(len(texts), len(refs), 3)

    # Rounds interleave the three, so a change in machine load hits all of them alike.
    t_ours = t_a = t_b = float("inf")
    for _ in range(args.repeats):
        t, s = best_of(1, lambda: ours.score(answers, refs))
        t_ours = min(t_ours, t)
        t, res_a = best_of(1, naive)
        t_a = min(t_a, t)
        t, res_b = best_of(1, flattened)
        t_b = min(t_b, t)
    mine = torch.stack([s.precision, s.recall, s.f1], dim=-1)[nonempty]  # (N, 14, 3)

    print(f"ours (references cached)      {t_ours * 1e3:9.1f} ms   (first call, embedding them: {t_cold * 1e3:.1f} ms)")
    print(f"(a) 14 bert_score calls       {t_a * 1e3:9.1f} ms   ratio {t_a / t_ours:6.1f}x  (target >= 15x)")
    print(f"(b) 1 flattened bert_score    {t_b * 1e3:9.1f} ms   ratio {t_b / t_ours:6.1f}x  (target >= 1.0x)")
    print(f"    cold-call ratios: {t_a / t_cold:.1f}x vs (a), {t_b / t_cold:.1f}x vs (b)")

    ok = True
    for name, res in (("(a)", res_a), ("(b)", res_b)):
        diff = (res - mine).abs()
        far = (diff.amax(dim=-1) > TOL).nonzero().tolist()
        worst_single = 0.0
        for i, j in far:  # re-check against bert_score on the lone pair (no padding)
            single = torch.stack(theirs.score([texts[i]], [refs[j]]), dim=-1)[0]
            worst_single = max(worst_single, (single - mine[i, j]).abs().max().item())
        print(f"max |ours - {name}| = {diff.max().item():.2e} over P/R/F1; {len(far)} of {diff.shape[0] * diff.shape[1]} "
              f"pairs differ by > {TOL:g} (bert_score's zero-filled padding); on those pairs alone: "
              f"max |ours - bert_score| = {worst_single:.2e}")
        ok &= worst_single <= TOL
    met = t_a / t_ours >= 15 and t_b / t_ours >= 1.0
    print(f"targets {'met' if met else 'NOT met'}; values {'agree' if ok else 'DISAGREE'} within {TOL:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
