"""What the answerability probes share: the sets' contexts and questions, and a stand-in for
the service's retrieval (the contexts with the most IDF-weighted character bigrams in common
with the question), so that a probe can try a signal without the service."""

import collections
import math
import re
from pathlib import Path

from make_sets import norm, read_jsonl

ROOT = Path(__file__).resolve().parent
SHARED = ROOT.parent.parent.parent / "shared"
SETS = ["seed", "jsquad", "jaquad", "lawqa"]


def bigrams(text: str) -> collections.Counter:
    text = norm(text)
    return collections.Counter(text[i : i + 2] for i in range(len(text) - 1))


def auc(positive: list, negative: list) -> float:
    if not positive or not negative:
        return float("nan")
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def auc_of(rows: list, score) -> float:
    """AUC of `score` (higher: answerable) over outcome rows."""
    return auc([score(r) for r in rows if r["answerable"]], [score(r) for r in rows if not r["answerable"]])


def load_set(name: str) -> tuple:
    """The set's contexts (the seed corpus cut into passages of about 500 characters at blank
    lines) and its questions."""
    if name == "seed":
        contexts = []
        for path in sorted((SHARED / "corpus" / "text").glob("*.txt")):
            chunk = ""
            for paragraph in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
                if chunk and len(chunk) + len(paragraph) > 500:
                    contexts.append(chunk)
                    chunk = ""
                chunk += paragraph + "\n"
            if chunk.strip():
                contexts.append(chunk)
        questions_path = SHARED / "eval" / "seed" / "questions.jsonl"
    else:
        contexts = [context["text"] for context in read_jsonl(ROOT / name / "contexts.jsonl")]
        questions_path = ROOT / name / "questions.jsonl"
    questions = read_jsonl(questions_path)
    return contexts, questions


class StandIn:
    def __init__(self, contexts: list):
        self.context_bigrams = [bigrams(context) for context in contexts]
        document_frequency = collections.Counter()
        for counts in self.context_bigrams:
            document_frequency.update(counts.keys())
        self.idf = {g: math.log(len(contexts) / n) for g, n in document_frequency.items()}

    def __call__(self, question: str, top: int) -> list:
        """Indices of the `top` contexts, best first."""
        wanted = bigrams(question)
        weight = lambda i: sum(self.idf[g] for g in wanted if g in self.context_bigrams[i])
        return sorted(range(len(self.context_bigrams)), key=lambda i: -weight(i))[:top]
