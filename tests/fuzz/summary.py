#!/usr/bin/env python3
"""Summary of the front's request log (one JSON line per request, see front.py --log).

    python3 tests/fuzz/summary.py .local-stack/fuzz/latest/requests.jsonl

Prints how many requests were sent, per route and status, and every server error (5xx) the
front saw, grouped by route, status and cause. Exits 3 when there was any server error.
Python 3.11 standard library only.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict


def main(path: str) -> int:
    records = []
    with open(path) as log:
        for line in log:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    if not records:
        print("  requests: 0")
        return 0
    by_route: dict[str, Counter] = defaultdict(Counter)
    authenticated = sum(1 for r in records if r.get("tenant"))
    by_hook = sum(1 for r in records if r.get("hook"))
    server_errors: Counter = Counter()
    examples: dict[tuple, str] = {}
    slowest = max(records, key=lambda r: r.get("ms", 0))
    for r in records:
        route = r.get("route", "(not invoked)")
        by_route[route][r["status"]] += 1
        if r["status"] >= 500:
            cause = (r.get("front_error") or {}).get("kind", "answered by the function")
            key = (route, r["status"], cause)
            server_errors[key] += 1
            examples.setdefault(key, f'{r["method"]} {r["target"]}')
    print(
        f"  requests: {len(records)} ({authenticated} as the test tenant, "
        f"{len(records) - authenticated} without identity; {by_hook} of them GETs of "
        f"hooks.py for If-Match); slowest "
        f"{slowest.get('ms', 0) / 1000:.1f} s ({slowest['method']} {slowest['target'][:80]})"
    )
    for route in sorted(by_route):
        statuses = ", ".join(f"{s}x{n}" for s, n in sorted(by_route[route].items()))
        print(f"    {route:32} {statuses}")
    if server_errors:
        print("  server errors seen by the front:")
        for (route, status, cause), n in sorted(server_errors.items()):
            print(f"    {status} x{n} {route}: {cause}; e.g. {examples[(route, status, cause)][:120]}")
        if any(cause in ("invoke_refused", "invoke_unreachable") for _, _, cause in server_errors):
            print(
                "  NOTE: the Invoke API went away during the run (the local functions restarted,\n"
                "        e.g. scripts/local-stack reload): those 502s are not findings; rerun."
            )
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
