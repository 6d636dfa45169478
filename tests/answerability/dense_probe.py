#!/usr/bin/env python3
"""Probes whether dense similarities would help the answerability decision, before any Rust.

For every question of a set it picks the three contexts with the most IDF-weighted character
bigrams in common with the question (a stand-in for the service's retrieval), splits them into
sentences, and embeds the question and those sentences with the model `hikitsugi setup` made:
`sentence_dense` is the best question-sentence cosine, `passage_dense` the question's cosine to
the best context, and `sentence_alignment` the best sentence's soft coverage of the question
(BERTScore recall: for each of the question's tokens, its best cosine to a token of the sentence,
averaged; it sees paraphrases that character bigrams miss). It prints each signal's AUC
(answerable against unanswerable) beside the lexical `passage_coverage` the service computed,
then fits the logistic model of fit.py on the "fit" questions of the removal sets, with and
without the dense signals, and prints abstain / false_abstain on the "check" questions and on
the seed set, and what each fit can reach at false_abstain <= 0.05 (fit.py's `ceiling`).

Run with the Python environment `hikitsugi setup` made (onnxruntime, tokenizers, numpy), after
tests/answerability/run.sh:

    ~/.cache/hikitsugi/venv/bin/python tests/answerability/dense_probe.py target/answerability [--sets seed,lawqa]
"""

import argparse
import os
import re
import unicodedata
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from fit import ceiling, coverage, features, fit, held_out, logit, outcomes, rates
from standin import SETS, StandIn, auc_of, load_set

CACHE = Path(os.environ.get("HIKITSUGI_CACHE_DIR") or Path.home() / ".cache" / "hikitsugi")
MODEL = CACHE / "models" / "multilingual-e5-small-q4"
TOP_CONTEXTS = 3
MAX_SENTENCES = 40


class Encoder:
    def __init__(self, model_dir: Path):
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.cache = {}
        self.token_cache = {}

    def __call__(self, texts: list) -> np.ndarray:
        """Mean-pooled, normalised vectors of `texts` (prefixed already)."""
        self._encode(texts)
        return np.array([self.cache[t] for t in texts])

    def tokens(self, texts: list) -> list:
        """Each text's normalised token vectors, without the opening, the prefix and "</s>"."""
        self._encode(texts)
        return [self.token_cache[t].astype(np.float32) for t in texts]

    def _encode(self, texts: list) -> None:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        for start in range(0, len(todo), 16):
            batch = todo[start : start + 16]
            encodings = [self.tokenizer.encode(t) for t in batch]
            width = min(512, max(len(e.ids) for e in encodings))
            ids = np.ones((len(batch), width), np.int64)
            mask = np.zeros_like(ids)
            for row, e in enumerate(encodings):
                n = min(width, len(e.ids))
                ids[row, :n] = e.ids[:n]
                mask[row, :n] = 1
            (hidden,) = self.session.run(
                ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )
            pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
            pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
            self.cache.update(zip(batch, pooled))
            for row, (text, encoding) in enumerate(zip(batch, encodings)):
                # "<s>", then the pieces of "query: " or "passage: " (those that end inside it: a
                # text opening with a Latin word or a number joins the prefix's space to it).
                prefix_end = text.index(" ") + 1
                skip = 1 + sum(1 for _, end in encoding.offsets[1:] if 0 < end <= prefix_end)
                vectors = hidden[row, skip : int(mask[row].sum()) - 1]
                vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
                self.token_cache[text] = vectors.astype(np.float16)


def sentences(text: str) -> list:
    parts = (part.strip() for part in re.split(r"(?<=[。！？!?])|\n", unicodedata.normalize("NFKC", text)))
    return [part for part in parts if len(part) >= 8 and not part.startswith("#")]


def probe(name: str, encode: Encoder, outcome_by_id: dict) -> list:
    contexts, questions = load_set(name)
    retrieve = StandIn(contexts)
    rows = []
    for question in questions:
        outcome = outcome_by_id.get(question["id"])
        if outcome is None:
            continue
        top = retrieve(question["question"], TOP_CONTEXTS)
        candidates = [s for i in top for s in sentences(contexts[i])][:MAX_SENTENCES]
        if not candidates:
            continue
        query = encode(["query: " + question["question"]])[0]
        sentence_dense = float((encode(["passage: " + s for s in candidates]) @ query).max())
        (question_tokens,) = encode.tokens(["query: " + question["question"]])
        sentence_alignment = max(
            float((question_tokens @ tokens.T).max(1).mean())
            for tokens in encode.tokens(["passage: " + s for s in candidates])
        )
        passage_dense = float(encode(["passage: " + contexts[top[0]][:1000]])[0] @ query)
        # E5 cosines sit in a narrow band (about 0.7–0.9): scaled to about −1…1, the range of the
        # other signals, so that fit.py's plain gradient descent fits them in as many steps.
        rows.append(dict(outcome, set=name, split=question.get("split", "check"),
                         dense=[sentence_dense * 10 - 8, passage_dense * 10 - 8, sentence_alignment * 10 - 8]))
    dense = lambda index: lambda row: row["dense"][index]
    print(
        f"{name}: {sum(r['answerable'] for r in rows)} answerable, {sum(not r['answerable'] for r in rows)} not; "
        f"AUC sentence_dense {auc_of(rows, dense(0)):.3f}, passage_dense {auc_of(rows, dense(1)):.3f}, "
        f"sentence_alignment {auc_of(rows, dense(2)):.3f}, passage_coverage {auc_of(rows, coverage):.3f}",
        flush=True,
    )
    return rows


def with_dense(row: dict) -> list:
    return features(row) + row["dense"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="where tests/answerability/run.sh wrote the outcomes")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    args = parser.parse_args()
    sets = args.sets.split(",")
    encode = Encoder(MODEL)
    rows = []
    for name in sets:
        outcome_by_id = {row["id"]: row for row in outcomes(args.out_dir / f"{name}.jsonl")}
        rows += probe(name, encode, outcome_by_id)
    fitted_on = [r for r in rows if r["set"] != "seed" and r["split"] == "fit"]
    if not fitted_on:
        print("\nno removal set among --sets: nothing to fit the model on")
        return
    evaluated = {name: [r for r in rows if r["set"] == name and held_out(name, r["split"])] for name in sets}
    for label, featurize in (("lexical only", features), ("lexical and dense", with_dense)):
        weights = fit(fitted_on, featurize=featurize)
        print(f"\n{label}: weights {[round(w, 2) for w in weights]}")
        for threshold in (0.4, 0.5, 0.6):
            print(f"  threshold {threshold}:")
            for name, part in evaluated.items():
                print(f"    {name:8} {rates(part, weights, threshold, featurize)}")
        print("  abstain at false_abstain <= 0.05, best threshold per set (a ceiling):")
        for name, part in evaluated.items():
            print(f"    {name:8} {ceiling(part, logit(weights, featurize)):.2f}")


if __name__ == "__main__":
    main()
