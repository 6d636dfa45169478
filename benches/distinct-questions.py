"""The distinct questions of the seed, JSQuAD and JaQuAD sets (over 500), in their order, one per
line and JSON-escaped, as benches/wrk-search.lua reads WRK_QUESTIONS.

    python3 benches/distinct-questions.py ../shared/eval > questions
"""
import json
import sys

seen = {}
for name in ("seed", "jsquad", "jaquad"):
    with open(f"{sys.argv[1]}/{name}/questions.jsonl", encoding="utf-8") as lines:
        for line in lines:
            seen.setdefault(json.loads(line)["question"], None)
for question in seen:
    print(json.dumps(question, ensure_ascii=False)[1:-1])
