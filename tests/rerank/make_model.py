"""Writes a tiny cross-encoder for the reranking tests: a fastembed user-defined reranker whose
`logits` for a (query, passage) pair is the number of tokens of a marker word in the pair.

usage: make_model.py TOKENIZER_DIR OUT_DIR MARKER

TOKENIZER_DIR holds tokenizer.json, config.json, special_tokens_map.json and
tokenizer_config.json (the embedding model's, so the tokenizer is a real one); they are copied.
"""

import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

TOKENIZER_FILES = ("tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json")


def main(tokenizer_dir: Path, out_dir: Path, marker: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_dir / name, out_dir / name)
    tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    encoded = tokenizer.encode(marker, add_special_tokens=False)
    # The word-start piece "▁" begins every text: it must not count.
    marker_ids = {token_id for token_id, token in zip(encoded.ids, encoded.tokens) if token != "\u2581"}
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    table = np.zeros((vocab, 1), dtype=np.float32)
    for token_id in marker_ids:
        table[token_id, 0] = 1.0

    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["per_token"], axis=0),
        helper.make_node("Squeeze", ["per_token", "last_axis"], ["weights"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["weights", "mask"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "token_axis"], ["logits"], keepdims=1),
    ]
    graph = helper.make_graph(
        nodes,
        "marker_counter",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "last_axis"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "token_axis"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(out_dir / "model.onnx"))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
