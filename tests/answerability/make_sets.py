#!/usr/bin/env python3
"""Makes the answerability sets: questions of ../shared/eval/{jsquad,jaquad,lawqa} whose gold
context is removed from the corpus become unanswerable (gold: []), mixed with the others, kept
answerable over the remaining contexts.

For each set, every other gold context (in the order of a hash of its id, so the choice does not
follow the source's order) is removed. A question whose gold contexts are all removed is kept as
unanswerable only when no remaining context contains one of its answers (after NFKC and with
whitespace removed); otherwise it is left out, since the corpus may still answer it. Questions
whose gold contexts all remain stay answerable; a question with some removed and some kept is
left out. Each question gets a `split` ("fit" or "check", by a hash of its id): the decision's
weights are fitted on "fit" questions only.

Usage: python3 tests/answerability/make_sets.py [SHARED_EVAL_DIR]
(default ../shared/eval from the repository root; writes tests/answerability/<set>/).
"""

import hashlib
import json
import sys
import unicodedata
from pathlib import Path

SETS = ["jsquad", "jaquad", "lawqa"]


def norm(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if not ch.isspace())


def digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def make(source: Path, target: Path) -> dict:
    contexts = read_jsonl(source / "contexts.jsonl")
    questions = read_jsonl(source / "questions.jsonl")
    gold_ids = sorted({gold["doc"] for q in questions for gold in q["gold"]}, key=digest)
    removed = set(gold_ids[::2])
    kept_contexts = [c for c in contexts if c["id"] not in removed]
    kept_texts = [norm(c["title"] + c["text"]) for c in kept_contexts]
    out = []
    left_out = 0
    for question in questions:
        docs = {gold["doc"] for gold in question["gold"]}
        row = {
            "id": question["id"],
            "question": question["question"],
            "answers": question.get("answers", []),
            "split": "fit" if digest("split:" + question["id"]) % 2 == 0 else "check",
        }
        if docs.isdisjoint(removed):
            row["gold"] = question["gold"]
        elif docs <= removed:
            answers = [norm(a) for a in question.get("answers", []) if norm(a)]
            if any(answer in text for answer in answers for text in kept_texts):
                left_out += 1
                continue
            row["gold"] = []
        else:
            left_out += 1
            continue
        out.append(row)
    target.mkdir(parents=True, exist_ok=True)
    write_jsonl(target / "contexts.jsonl", kept_contexts)
    write_jsonl(target / "questions.jsonl", out)
    unanswerable = sum(1 for row in out if not row["gold"])
    return {
        "contexts": len(kept_contexts),
        "removed_contexts": len(removed),
        "questions": len(out),
        "unanswerable": unanswerable,
        "left_out": left_out,
    }


def main() -> None:
    root = Path(__file__).resolve().parent
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else root.parents[2] / "shared" / "eval"
    for name in SETS:
        summary = make(shared / name, root / name)
        print(name, json.dumps(summary))


if __name__ == "__main__":
    main()
