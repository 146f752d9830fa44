import json, time, pytest, httpx
from test_http_errors import world, World, SITE, COOP, HELD, FREE, TRADER, REFINER, to_bytes

def test_probe(world):
    out = []
    def p(name, env):
        t = time.perf_counter()
        r = world.http.post("/v1/events", content=env if isinstance(env, bytes) else to_bytes(env), headers={"content-type": "application/json"})
        out.append((name, r.status_code, round(time.perf_counter() - t, 3), r.text[:200]))
    s = world.sign
    p("long ids", s("itsci", "tags_issued", f"org:{SITE}", {"ranges": [{"prefix": "A" * 31, "start": 1, "count": 2, "width": 12}]}))
    p("10000 range", s("itsci", "tags_issued", f"org:{SITE}", {"ranges": [{"prefix": "BIG-", "start": 1, "count": 10000, "width": 6}]}))
    p("10000 list", s("itsci", "tags_issued", f"org:{SITE}", {"tags": [f"LST-{i:06d}" for i in range(10000)]}))
    p("10001", s("itsci", "tags_issued", f"org:{SITE}", {"ranges": [{"prefix": "BAG-", "start": 1, "count": 10000, "width": 6}], "tags": ["ONE-MORE"]}))
    t = time.perf_counter(); r = world.http.get("/v1/tags/BIG-000001"); out.append(("get big", r.status_code, round(time.perf_counter()-t, 3), len(r.content)))
    t = time.perf_counter(); r = world.http.get("/v1/streams/tag:BIG-000001/head"); out.append(("head big", r.status_code, round(time.perf_counter()-t, 3)))
    t = time.perf_counter(); r = world.http.get(f"/v1/streams/org:{SITE}/head"); out.append(("head org", r.status_code, round(time.perf_counter()-t, 3)))
    for o in out: print(o)
