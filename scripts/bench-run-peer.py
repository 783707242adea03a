#!/usr/bin/env python3
"""Times invocations for scripts/bench-run.

  bench-run-peer.py stdout N CMD...   CMD prints one line per answer (lambda-img run
                                      with N events): seconds to the first line, and
                                      milliseconds per invoke over the rest.
  bench-run-peer.py api N CMD...      serves a Runtime API (2018-06-01) on 127.0.0.1
                                      and starts CMD with {api} replaced by its
                                      address (podman run ...); hands it N events
                                      one after another and prints the same figures.
Prints JSON: {"first_s": ..., "per_invoke_ms": ...}."""
import http.server
import json
import queue
import subprocess
import sys
import threading
import time

def by_stdout(n, cmd):
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    stamps = []
    for _ in range(n):
        if not p.stdout.readline():
            break
        stamps.append(time.monotonic())
    p.wait()
    return start, stamps

def by_api(n, cmd):
    events, answers = queue.Queue(), queue.Queue()

    class Api(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *a):
            pass
        def reply(self, code, body, headers=()):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def do_GET(self):
            rid = events.get()
            deadline = int(time.time() * 1000) + 60000
            self.reply(200, b"{}", [("Lambda-Runtime-Aws-Request-Id", rid),
                                    ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                                    ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:012345678912:function:bench"),
                                    ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")])
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            answers.put(time.monotonic())
            self.reply(202, b'{"status":"OK"}')

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"127.0.0.1:{server.server_address[1]}"
    start = time.monotonic()
    p = subprocess.Popen([a.replace("{api}", api) for a in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stamps = []
    for i in range(n):
        events.put(f"req-{i}")
        stamps.append(answers.get(timeout=120))
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
    return start, stamps

def main():
    mode, n, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    start, stamps = (by_stdout if mode == "stdout" else by_api)(n, cmd)
    if len(stamps) < n:
        sys.exit(f"only {len(stamps)} of {n} answers")
    per = (stamps[-1] - stamps[0]) / (n - 1) * 1000 if n > 1 else 0.0
    print(json.dumps({"first_s": round(stamps[0] - start, 4), "per_invoke_ms": round(per, 3)}))

main()
