#!/usr/bin/env python3
"""Probes a local LLM as the answerability judge: is it the reader the lexical signals lack?

For every question of a set (the "check" split of a removal set; all of the seed set) it gives
the model the two contexts the probes' stand-in retrieval ranks first (standin.py) and asks
whether they answer the question, 「はい」 or 「いいえ」, one token. The score is the log-probability
of the first against the second. It prints the score's AUC (answerable against unanswerable)
beside the service's `passage_coverage` on the same questions, and both ceilings (fit.py's
`ceiling`: the most it can abstain on at false_abstain <= 0.05).

Run with the Python environment of tests/llm/setup.sh (xllamacpp), after
tests/answerability/run.sh; about 6-10 s a question on two cores:

    tests/llm/setup.sh 1.5b
    ~/.cache/hikitsugi/llm/venv/bin/python tests/answerability/llm_judge_probe.py target/answerability \
        --model ~/.cache/hikitsugi/llm/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf [--sets seed,jsquad]
"""

import argparse
from pathlib import Path

import xllamacpp

from fit import ceiling, coverage, held_out, outcomes
from standin import SETS, StandIn, auc_of, load_set

TOP_CONTEXTS = 2
CONTEXT_CHARS = 700
# What a token the model may answer with starts with.
YES = ("はい", "yes", "Yes")
NO = ("いい", "no", "No")
# A log-probability below anything top_logprobs returns.
UNSEEN = -30.0


class Judge:
    def __init__(self, model: Path, threads: int):
        params = xllamacpp.CommonParams()
        params.model.path = str(model)
        params.n_ctx = 4096
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        self.server = xllamacpp.Server(params)

    def __call__(self, question: str, passages: list) -> float:
        documents = "\n\n".join(f"[資料{i + 1}]\n{p[:CONTEXT_CHARS]}" for i, p in enumerate(passages))
        messages = [
            {"role": "system", "content": "あなたは資料を読んで、質問の答えが資料に書かれているかを判定します。"},
            {
                "role": "user",
                "content": f"{documents}\n\n質問: {question}\n\n"
                "この質問の答えは上の資料に書かれていますか。「はい」か「いいえ」だけで答えてください。",
            },
        ]
        response = self.server.handle_chat_completions(
            {"messages": messages, "max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": 10}
        )
        candidates = response["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        best = lambda prefixes: max(
            (c["logprob"] for c in candidates if c["token"].startswith(prefixes)), default=UNSEEN
        )
        return best(YES) - best(NO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="where tests/answerability/run.sh wrote the outcomes")
    parser.add_argument("--model", type=Path, required=True, help="a GGUF chat model")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    judge = Judge(args.model, args.threads)
    for name in args.sets.split(","):
        contexts, questions = load_set(name)
        retrieve = StandIn(contexts)
        outcome_by_id = {row["id"]: row for row in outcomes(args.out_dir / f"{name}.jsonl")}
        rows = []
        for question in questions:
            outcome = outcome_by_id.get(question["id"])
            if outcome is None or not held_out(name, question.get("split", "check")):
                continue
            top = retrieve(question["question"], TOP_CONTEXTS)
            rows.append(dict(outcome, judge=judge(question["question"], [contexts[i] for i in top])))
        judged = lambda row: row["judge"]
        unanswerable = sum(1 for r in rows if not r["answerable"])
        print(
            f"{name}: {len(rows)} questions, {unanswerable} unanswerable; "
            f"AUC judge {auc_of(rows, judged):.3f}, passage_coverage {auc_of(rows, coverage):.3f}; "
            f"ceiling judge {ceiling(rows, judged):.2f}, passage_coverage {ceiling(rows, coverage):.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
