#!/usr/bin/env python3
"""The mock that suites/cassettes/coding.jsonl was recorded from (no real model answered it).

Serves OpenAI-style /v1/chat/completions on 127.0.0.1:8081 (smollm2-135m-instruct) and :8082
(gemma3-270m), the quickstart providers' addresses, answering each coding task with canned
Python: some right, some wrong (a wrong result, a syntax error, a crash), so the `code` grader
has something to tell apart. Record again with:

    python3 suites/cassettes/coding-mock.py &
    costbench --db /tmp/rec.db run suites/coding.yaml --providers suites/quickstart.providers.yaml \
        --cassette suites/cassettes/coding.jsonl
    kill %1
"""
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FENCE = "```"

ANSWERS = {
    "smollm2-135m-instruct": {
        "digit_sum": "def digit_sum(n):\n    return sum(int(c) for c in str(abs(n)))\n",
        "is_palindrome": "def is_palindrome(s):\n    t = [c.lower() for c in s if c.isalnum()]\n    return t == t[::-1]\n",
        # Wrong: the last run is never written.
        "run_length": "def run_length(s):\n    out = ''\n    count = 1\n    for i in range(1, len(s)):\n        if s[i] == s[i - 1]:\n            count += 1\n        else:\n            out += s[i - 1] + str(count)\n            count = 1\n    return out\n",
        "second_largest": "def second_largest(xs):\n    d = sorted(set(xs))\n    return d[-2] if len(d) >= 2 else None\n",
        # Right, without a fence.
        "merge_intervals": "RAW:def merge_intervals(iv):\n    out = []\n    for a, b in sorted(iv):\n        if out and a <= out[-1][1]:\n            out[-1] = (out[-1][0], max(out[-1][1], b))\n        else:\n            out.append((a, b))\n    return out\n",
        # Wrong: not lowercased.
        "top_word": "import re\nfrom collections import Counter\n\ndef top_word(text):\n    words = re.findall(r'[A-Za-z]+', text)\n    if not words:\n        return ''\n    return Counter(words).most_common(1)[0][0]\n",
    },
    "gemma3-270m": {
        # Crashes on a negative number: int('-').
        "digit_sum": "def digit_sum(n):\n    return sum(int(c) for c in str(n))\n",
        # Syntax error.
        "is_palindrome": "def is_palindrome(s)\n    return s == s[::-1]\n",
        "run_length": "from itertools import groupby\n\ndef run_length(s):\n    return ''.join(k + str(len(list(g))) for k, g in groupby(s))\n",
        # Wrong: duplicates are not removed.
        "second_largest": "def second_largest(xs):\n    if len(xs) < 2:\n        return None\n    return sorted(xs)[-2]\n",
        # Right, with prose around the fence.
        "merge_intervals": "PROSE:def merge_intervals(iv):\n    res = []\n    for s, e in sorted(iv):\n        if res and s <= res[-1][1]:\n            res[-1] = (res[-1][0], max(res[-1][1], e))\n        else:\n            res.append((s, e))\n    return res\n",
        "top_word": "import re\n\ndef top_word(text):\n    words = [w.lower() for w in re.findall(r'[A-Za-z]+', text)]\n    best, count = '', 0\n    seen = {}\n    for w in words:\n        seen[w] = seen.get(w, 0) + 1\n    for w in words:\n        if seen[w] > count:\n            best, count = w, seen[w]\n    return best\n",
    },
}


def answer(model, prompt):
    m = re.search(r"function `(\w+)`", prompt)
    code = ANSWERS.get(model, {}).get(m.group(1) if m else "", "pass\n")
    if code.startswith("RAW:"):
        return code[4:]
    if code.startswith("PROSE:"):
        return f"Here is the function:\n\n{FENCE}python\n{code[6:]}{FENCE}\n\nIt sorts first."
    return f"{FENCE}python\n{code}{FENCE}"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        model = body["model"]
        prompt = body["messages"][-1]["content"]
        text = answer(model, prompt)
        n_in = sum(len(m["content"]) for m in body["messages"]) // 4
        reply = {
            "id": f"chatcmpl-{uuid.uuid4()}",
            "object": "chat.completion",
            "created": 1795900000,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": n_in, "completion_tokens": len(text) // 4,
                      "total_tokens": n_in + len(text) // 4},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    servers = [ThreadingHTTPServer(("127.0.0.1", port), Handler) for port in (8081, 8082)]
    threads = [threading.Thread(target=s.serve_forever) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
