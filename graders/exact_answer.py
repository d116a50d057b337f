#!/usr/bin/env python3
"""costbench command grader: the output, trimmed and lowercased, equals `expected`.

Serves both modes of the `command` grader (see graders/README.md) with one loop: each line on
stdin is one request ({"output", "vars", "expected", "provider"}) and gets one verdict line
({"pass", "score", "reason"}) on stdout, flushed at once, until stdin ends. One-shot mode sends
a single request and closes stdin; `persistent: true` keeps sending. A request it cannot read
gets an error on stderr and exit code 2: costbench counts a grader error for that output.
"""
import json
import sys


def verdict(data: dict) -> dict:
    expected = data.get("expected")
    if expected is None:
        raise ValueError("no expected value: set expected_var in the suite")
    got = str(data.get("output", "")).strip().lower()
    want = str(expected).strip().lower()
    ok = got == want
    reason = "matches" if ok else f"expected {want!r}, got {got[:80]!r}"
    return {"pass": ok, "score": 1.0 if ok else 0.0, "reason": reason}


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("the request is not a JSON object")
            reply = verdict(data)
        except ValueError as e:
            print(f"bad input: {e}", file=sys.stderr)
            return 2
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
