"""Push bodies for the load runs: one row, and 1000 rows, of the `events` source, timed now."""

import json
import sys
import time
from datetime import datetime, timezone

work = sys.argv[1]
now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row(i):
    return {"user_id": i, "event_timestamp": now, "amount": 12.5 + i, "kind": "a"}


json.dump({"source": "events", "rows": [row(7)]}, open(f"{work}/one.json", "w"))
json.dump({"source": "events", "rows": [row(i) for i in range(1000)]}, open(f"{work}/batch1000.json", "w"))
