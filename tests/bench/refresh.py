"""Refresh-token rotations per second through latchd (issue 4's benchmark).

Signs in CHAINS sessions, then each chain keeps presenting the refresh token it was just
given (a real rotation every time, never a grace-window repeat) for SECONDS over one HTTP/2
connection. Prints one JSON line: rotations, seconds, rotations_per_s, errors, p50/p99 ms.
Usage: refresh.py BASE_URL LOGIN_JSON_FILE CHAINS SECONDS
"""
import asyncio
import json
import os
import sys
import time

import httpx


async def main():
    base, login_file, chains, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    body = json.load(open(login_file))
    lat, errors = [], 0
    async with httpx.AsyncClient(base_url=base, http1=False, http2=True, timeout=30) as c:
        tokens = []
        for _ in range(chains):
            r = await c.post("/v1/auth/login", json=body)
            r.raise_for_status()
            tokens.append(r.json()["refresh_token"])
        if os.environ.get("READY_FILE"):  # lets a caller measure the rotations alone
            open(os.environ["READY_FILE"], "w").close()
        deadline = time.monotonic() + seconds

        async def chain(i):
            nonlocal errors
            tok = tokens[i]
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                r = await c.post("/v1/auth/refresh", json={"refresh_token": tok})
                if r.status_code != 200:
                    errors += 1
                    return
                lat.append(time.monotonic() - t0)
                tok = r.json()["refresh_token"]

        t0 = time.monotonic()
        await asyncio.gather(*(chain(i) for i in range(chains)))
        took = time.monotonic() - t0
    lat.sort()
    pct = lambda p: round(lat[min(len(lat) - 1, int(len(lat) * p / 100))] * 1000, 2) if lat else None
    print(json.dumps({"rotations": len(lat), "seconds": round(took, 2), "rotations_per_s": round(len(lat) / took, 1),
                      "errors": errors, "chains": chains, "p50_ms": pct(50), "p99_ms": pct(99)}))


asyncio.run(main())
