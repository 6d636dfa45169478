#!/usr/bin/env python3
"""Fits the answerability decision (src/answer/answerability.rs) and reports it on every set.

Input: for each set, the per-question outcomes of `hikitsugi eval --per-question` (JSON lines,
as `tests/answerability/run.sh` writes them to OUT_DIR/<set>.jsonl), and the set's questions
(for their `split`). The logistic model is fitted on the "fit" questions of the removal sets
only (the seed set is never fitted on), with balanced class weights and a small L2 penalty, by
plain gradient descent (no dependencies). It then prints the weights to put in the code and,
for every set and split, abstain / false_abstain with the weights as fitted and with the
weights the code has now (`--current BIAS W1 W2 ...`), the rules included: a question naming
something no passage mentions, or asking for an amount none states, is never answerable.

With `--ceiling` it also prints, per set, the largest abstain share that each signal alone and
the fitted model reach while false_abstain stays at most 0.05, the threshold chosen on that set
itself: an upper bound on what a decision made of those signals can do there.

Usage: python3 tests/answerability/fit.py OUT_DIR [--threshold T] [--features A,B,...]
       [--current BIAS W...] [--sweep] [--ceiling]
"""

import argparse
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parent
FEATURES = [
    "passage_coverage",
    "sentence_coverage",
    "focus_coverage",
    "sentence_terms",
    "word_coverage",
    "missing_terms",
    "missing_words",
    "top_score",
]
REMOVAL_SETS = ["jsquad", "jaquad", "lawqa"]


def outcomes(path: Path) -> list:
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("{") and '"assessment"' in line:
            rows.append(json.loads(line))
    return rows


def splits(name: str) -> dict:
    path = ROOT / name / "questions.jsonl"
    if not path.exists():
        return {}
    return {q["id"]: q.get("split", "check") for q in map(json.loads, path.read_text().splitlines())}


def held_out(set_name: str, split: str) -> bool:
    """Whether no fit sees a question: the check split of a removal set, all of the seed set."""
    return set_name == "seed" or split == "check"


def coverage(row: dict) -> float:
    """The signal the service decides on."""
    return row["assessment"]["signals"]["passage_coverage"]


def features(row: dict) -> list:
    signals = row["assessment"]["signals"]
    return [float(signals.get(name, 0.0)) for name in FEATURES]


def ruled_out(row: dict) -> bool:
    assessment = row["assessment"]
    return bool(assessment["missing_names"]) or assessment["missing_amount"]


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z > -60 else 0.0


def fit(rows: list, l2: float = 0.01, steps: int = 4000, rate: float = 0.5, featurize=features) -> list:
    xs = [featurize(row) for row in rows]
    ys = [1.0 if row["answerable"] else 0.0 for row in rows]
    positives = sum(ys)
    negatives = len(ys) - positives
    sample_weights = [0.5 / positives if y else 0.5 / negatives for y in ys]
    weights = [0.0] * (len(xs[0]) + 1)
    for _ in range(steps):
        gradient = [0.0] * len(weights)
        for x, y, w in zip(xs, ys, sample_weights):
            z = weights[0] + sum(wi * xi for wi, xi in zip(weights[1:], x))
            error = (sigmoid(z) - y) * w
            gradient[0] += error
            for i, xi in enumerate(x):
                gradient[i + 1] += error * xi
        for i in range(len(weights)):
            penalty = l2 * weights[i] if i else 0.0
            weights[i] -= rate * (gradient[i] + penalty)
    return weights


def logit(weights: list, featurize=features):
    """The model's score of a row before the sigmoid."""
    return lambda row: weights[0] + sum(wi * xi for wi, xi in zip(weights[1:], featurize(row)))


def decide(row: dict, weights: list, threshold: float, featurize=features) -> bool:
    return not ruled_out(row) and sigmoid(logit(weights, featurize)(row)) >= threshold


def rates(rows: list, weights: list, threshold: float, featurize=features) -> str:
    answerable = [row for row in rows if row["answerable"]]
    unanswerable = [row for row in rows if not row["answerable"]]
    abstain = sum(1 for row in unanswerable if not decide(row, weights, threshold, featurize))
    false_abstain = sum(1 for row in answerable if not decide(row, weights, threshold, featurize))
    a = abstain / len(unanswerable) if unanswerable else float("nan")
    f = false_abstain / len(answerable) if answerable else float("nan")
    return f"abstain {a:.2f} ({len(unanswerable)}) · false_abstain {f:.2f} ({len(answerable)})"


def ceiling(rows: list, score, most_false_abstain: float = 0.05) -> float:
    """The largest share of unanswerable questions any threshold on `score` (higher: answerable)
    abstains on while abstaining on at most `most_false_abstain` of the answerable ones, the rules
    included. The threshold is chosen on `rows` themselves, so this bounds what the score can do
    on them; a threshold fitted elsewhere does no better. NaN when the rules alone exceed the
    budget or a class is empty."""
    answerable = [row for row in rows if row["answerable"]]
    unanswerable = [row for row in rows if not row["answerable"]]
    if not answerable or not unanswerable:
        return float("nan")
    budget = int(most_false_abstain * len(answerable)) - sum(map(ruled_out, answerable))
    if budget < 0:
        return float("nan")
    scores = sorted(score(row) for row in answerable if not ruled_out(row))
    if budget >= len(scores):
        return 1.0
    threshold = scores[budget]
    abstained = sum(1 for row in unanswerable if ruled_out(row) or score(row) < threshold)
    return abstained / len(unanswerable)


def mean(values: list) -> float:
    return sum(values) / len(values) if values else 0.0


def print_ceilings(sets: dict, fitted: list) -> None:
    """Per set (check split, and all of the seed set), the ceiling of each signal alone (in the
    direction the fit questions give it) and of the fitted model."""
    training = [row for name in REMOVAL_SETS for row in sets.get(name, []) if row["split"] == "fit"]
    scores = []
    for index, name in enumerate(FEATURES):
        value = lambda row, index=index: features(row)[index]
        answerable = [value(row) for row in training if row["answerable"]]
        unanswerable = [value(row) for row in training if not row["answerable"]]
        sign = 1.0 if mean(answerable) >= mean(unanswerable) else -1.0
        scores.append((name, lambda row, value=value, sign=sign: sign * value(row)))
    scores.append(("fitted model", logit(fitted)))
    print("\nabstain at false_abstain <= 0.05, best threshold per set (a ceiling):")
    print("  " + "".join(f"{name:>10}" for name in sets) + "  score")
    for label, score in scores:
        line = ""
        for name, rows in sets.items():
            part = [row for row in rows if held_out(name, row["split"])]
            line += f"{ceiling(part, score):>10.2f}"
        print(f"  {line}  {label}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--current", type=float, nargs="+")
    parser.add_argument("--features", help="comma-separated signal names (default: all)")
    parser.add_argument("--sweep", action="store_true", help="also print rates at other thresholds")
    parser.add_argument("--ceiling", action="store_true",
                        help="also print what each signal and the fit can reach at false_abstain <= 0.05")
    args = parser.parse_args()
    if args.features:
        FEATURES[:] = args.features.split(",")
    sets = {}
    for path in sorted(args.out_dir.glob("*.jsonl")):
        split_of = splits(path.stem)
        rows = outcomes(path)
        for row in rows:
            row["split"] = split_of.get(row["id"], "check")
        sets[path.stem] = rows
    training = [
        row
        for name in REMOVAL_SETS
        for row in sets.get(name, [])
        if row["split"] == "fit" and not ruled_out(row)
    ]
    fitted = fit(training)
    print("fitted on", len(training), "questions")
    print("BIAS", round(fitted[0], 3))
    for name, weight in zip(FEATURES, fitted[1:]):
        print(f"  {name}: {weight:.3f}")
    candidates = [("fitted", fitted)]
    if args.current:
        candidates.append(("current", args.current))
    for label, weights in candidates:
        print(f"\n{label} weights, threshold {args.threshold}:")
        for name, rows in sets.items():
            for split in ["fit", "check"]:
                part = [row for row in rows if row["split"] == split]
                if part:
                    print(f"  {name:8} {split:5} {rates(part, weights, args.threshold)}")
        if args.sweep:
            for threshold in [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]:
                line = [f"{threshold:.2f}"]
                for name, rows in sets.items():
                    part = [row for row in rows if row["split"] == "check"]
                    line.append(f"{name}: {rates(part, weights, threshold)}")
                print("   " + " | ".join(line))
    if args.ceiling:
        print_ceilings(sets, fitted)


if __name__ == "__main__":
    main()
