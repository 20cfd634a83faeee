"""Pushes rows one by one, each a new value for one user, and looks each up at once: every
lookup must see the value just pushed. Prints how many were seen and the p99 of push + lookup."""

import json
import sys
import time
import http.client
from datetime import datetime, timezone

host, port = sys.argv[1].split(":")
conn = http.client.HTTPConnection(host, int(port))


def post(path, body):
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


latencies, seen, n = [], 0, 500
for i in range(n):
    amount = 1000.0 + i
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    started = time.perf_counter()
    status, _ = post("/v1/push", {"source": "events", "rows": [{"user_id": 424242, "event_timestamp": now, "amount": amount, "kind": "b"}]})
    assert status == 200, status
    status, answer = post("/v1/features", {"features": ["pushed:amount"], "entities": [{"user_id": 424242}]})
    latencies.append((time.perf_counter() - started) * 1000)
    seen += answer["results"][0]["features"]["amount"]["value"] == amount
latencies.sort()
print(json.dumps({"checked": n, "seen": seen, "p99_ms": latencies[int(0.99 * (n - 1))]}))
