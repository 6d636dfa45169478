#!/usr/bin/env python3
"""The Python peer's passage embedding on a list of texts, beside benches/embed_throughput.rs.
  peer-embed.py MODEL_DIR TEXTS.jsonl   -> prints {"embedder", "texts", "tokens", "seconds", "tokens_per_s"}
The peer's own Embedder (../shared/bench/peer.py) in the peer's own way: batches of 16, in list
order, after one warm-up call. Tokens are counted as the model reads them (truncated at 512).
"""
import json, os, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
from peer import Embedder  # noqa: E402

model, path = sys.argv[1], sys.argv[2]
texts = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
embed = Embedder(model)
tokens = sum(len(e.ids) for e in embed.t.encode_batch(["passage: " + t for t in texts]))
embed(["passage: " + texts[0]])
started = time.time()
vectors = 0
for b in range(0, len(texts), 16):
    vectors += len(embed(["passage: " + t for t in texts[b:b + 16]]))
seconds = time.time() - started
assert vectors == len(texts)
print(json.dumps({"embedder": "peer", "texts": len(texts), "tokens": tokens,
                  "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds)}))
