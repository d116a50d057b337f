#!/usr/bin/env python3
"""costbench command grader: the output, trimmed and lowercased, equals `expected`.

Reads one JSON object on stdin ({"output", "vars", "expected", "provider"}) and prints one
verdict ({"pass", "score", "reason"}). See graders/README.md.
"""
import json
import sys


def main() -> int:
    try:
        data = json.load(sys.stdin)
    except ValueError as e:
        print(f"bad input: {e}", file=sys.stderr)
        return 2
    expected = data.get("expected")
    if expected is None:
        print("no expected value: set expected_var in the suite", file=sys.stderr)
        return 2
    got = str(data.get("output", "")).strip().lower()
    want = str(expected).strip().lower()
    ok = got == want
    reason = "matches" if ok else f"expected {want!r}, got {got[:80]!r}"
    json.dump({"pass": ok, "score": 1.0 if ok else 0.0, "reason": reason}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
