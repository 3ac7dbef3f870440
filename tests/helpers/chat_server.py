"""A real OpenAI-compatible chat endpoint on 127.0.0.1, scripted, for backend tests.

It answers ``POST /v1/chat/completions`` with a scripted sequence of failures (HTTP status codes or
``"garbage"`` for a 200 whose body is not JSON) and then proper chat completions whose lines name
the label asked for, counting every request and the most requests in flight at once.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


_WORDS = ("apple", "river", "quiet", "engine", "silver", "garden", "rocket", "pillow", "thunder", "violet",
          "marble", "canyon", "pepper", "lantern", "harbor", "meadow", "cobalt", "falcon", "walnut", "glacier")


def distinct_text(label: str, number: int) -> str:
    """A text that no other number's text is a near duplicate of (five words picked by the digits)."""
    words = random.Random(number).sample(_WORDS, 5)
    return f"{label} {' '.join(words)} {number}"


class ChatServer:
    def __init__(self, failures: list = (), delay: float = 0.0, rows_per_answer: int = 3) -> None:
        self.failures = list(failures)
        self.delay, self.rows_per_answer = delay, rows_per_answer
        self.requests: list[dict] = []  # every request: {"status", "authorization", "body"}
        self.in_flight = self.max_in_flight = self.answers = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    failure = server.failures.pop(0) if server.failures else None
                    if failure is None:
                        server.answers += 1
                        number = server.answers
                    server.requests.append({"status": failure or 200, "authorization": self.headers.get("Authorization"),
                                            "body": body})
                try:
                    time.sleep(server.delay)
                    if failure == "garbage":
                        self._send(200, b"<html>upstream hiccup</html>")
                    elif failure is not None:
                        self._send(int(failure), json.dumps({"error": {"message": "try later"}}).encode(),
                                   {"retry-after-ms": "10"})
                    else:
                        self._send(200, json.dumps(server.completion(body, number)).encode())
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, status, payload, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                try:
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client was killed (resume tests)
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def completion(self, body: dict, number: int) -> dict:
        prompt = body["messages"][-1]["content"]
        label = re.search(r'labelled "([^"]+)"', prompt).group(1)
        lines = [f"Here are {self.rows_per_answer} examples:"] + [
            f"{i}. {distinct_text(label, number * 10 + i)}" for i in range(1, self.rows_per_answer + 1)]
        return {"id": f"c{number}", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "\n".join(lines)}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}}

    def __enter__(self) -> "ChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
