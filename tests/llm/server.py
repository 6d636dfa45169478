"""A small OpenAI-compatible HTTP server around xllamacpp, for the real-model tests.

Serves `POST /v1/chat/completions` (streaming and not), `GET /v1/models` and `GET /health`
with llama.cpp running in-process (xllamacpp's `Server.handle_chat_completions` takes and
returns OpenAI-format objects). One generation at a time. A streaming client that disconnects
stops its generation at the next token.

    python tests/llm/server.py --model ~/.cache/hikitsugi/llm/qwen2.5-coder-0.5b-instruct.gguf --port 0

prints `listening on http://127.0.0.1:PORT` once the model is loaded. Prepare the venv and the
model with `tests/llm/setup.sh`.
"""

import argparse
import json
import os
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import xllamacpp

_DONE = object()


class Model:
    """The loaded model; generations are serialised."""

    def __init__(self, path: str, context: int, threads: int):
        params = xllamacpp.CommonParams()
        params.model.path = path
        params.n_ctx = context
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        self.name = os.path.basename(path)
        self.server = xllamacpp.Server(params)
        self.lock = threading.Lock()

    def complete(self, request: dict) -> dict:
        with self.lock:
            return self.server.handle_chat_completions(request)

    def stream(self, request: dict, chunks: "queue.Queue", stop: threading.Event) -> None:
        """Puts each chunk (a dict) on `chunks`, then `_DONE`; stops early once `stop` is set."""

        def on_chunk(chunk):
            chunks.put(chunk)
            return stop.is_set()  # True asks xllamacpp to stop generating

        try:
            with self.lock:
                result = self.server.handle_chat_completions(request, on_chunk)
            if isinstance(result, dict) and "error" in result:
                chunks.put(result)
        except Exception as error:  # reported to the client as an error event
            chunks.put({"error": {"message": str(error)}})
        finally:
            chunks.put(_DONE)


def handler_for(model: Model):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            if os.environ.get("LLM_SERVER_LOG"):
                super().log_message(format, *args)

        def send_json(self, status: int, body: dict) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                self.send_json(200, {"status": "ok"})
            elif self.path == "/v1/models":
                self.send_json(200, {"object": "list", "data": [{"id": model.name, "object": "model"}]})
            else:
                self.send_json(404, {"error": {"message": "not found"}})

        def do_POST(self):
            if self.path != "/v1/chat/completions":
                self.send_json(404, {"error": {"message": "not found"}})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length))
                if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
                    raise ValueError("messages must be a list")
            except ValueError as error:
                self.send_json(400, {"error": {"message": f"bad request: {error}"}})
                return
            if request.get("stream"):
                self.stream(request)
            else:
                result = model.complete(request)
                status = 500 if isinstance(result, dict) and "error" in result else 200
                self.send_json(status, result)

        def stream(self, request: dict) -> None:
            chunks: queue.Queue = queue.Queue()
            stop = threading.Event()
            worker = threading.Thread(target=model.stream, args=(request, chunks, stop), daemon=True)
            worker.start()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            started = time.monotonic()
            try:
                while True:
                    chunk = chunks.get()
                    if chunk is _DONE:
                        self.wfile.write(b"data: [DONE]\n\n")
                        self.wfile.flush()
                        break
                    self.wfile.write(b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                stop.set()
                print(f"client disconnected after {time.monotonic() - started:.1f} s; generation stopped",
                      file=sys.stderr, flush=True)
            worker.join()

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2)))
    args = parser.parse_args()
    model = Model(args.model, args.context, args.threads)
    server = ThreadingHTTPServer((args.host, args.port), handler_for(model))
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
