"""Where an inclusion proof's CPU goes, in process: each piece of `GET /v1/log/proof/inclusion`'s answer timed alone
(CPU µs per proof) beside the whole answer and the checkpoint's (docs/benchmarks.md 11.9). Works on main's code (A)
and on the node cache's (B, whose pieces are LogTree's own steps, private methods included: a diagnostic, not an API).

    PYTHONPATH=<tree> python bench/proof_pieces.py URL N

N random leaves of the latest checkpoint, after N other random proofs (B's cache as warm as after N requests).
"""

from __future__ import annotations

import json
import random
import sys
import time

from api import routes_log
from ledger.service import Ledger

url, n = sys.argv[1], int(sys.argv[2])
led = Ledger.open(url); st = led.store; tree = st.tree
size = st.latest_checkpoint().size
rng = random.Random(11)
warm = [rng.randrange(size) for _ in range(n)]
idx = [rng.randrange(size) for _ in range(n)]
for i in warm:  # other leaves: B's cache as warm as after N requests
    routes_log.inclusion_answer(led, i, size)


def cpu(f):  # noqa: ANN001, ANN201
    t0 = time.process_time()
    for i in idx: f(i)
    return round((time.process_time() - t0) / n * 1e6, 1)


B = hasattr(tree, "cache")
out = {"side": "B" if B else "A", "url": url.split("@")[-1][-30:]}
out["checkpoint_answer"] = cpu(lambda i: routes_log.checkpoint_answer(led))
out["inclusion_answer"] = cpu(lambda i: routes_log.inclusion_answer(led, i, size))
if B:
    from ledger.tree.proofs import inclusion_plan
    plans = {i: inclusion_plan(i, size) for i in idx}
    needed = {i: tree._needed([plans[i]]) for i in idx}
    ids = {i: [i, *needed[i][0]] for i in idx}
    miss = {i: tree.cache.split(ids[i])[1] for i in idx}
    found = {i: {**tree.cache.split(ids[i])[0], **st.read_nodes(miss[i])} for i in idx}
    proofs = {i: tree._resolve([plans[i]], found[i], needed[i][1])[0] for i in idx}
    out["plan"] = cpu(lambda i: (inclusion_plan(i, size), tree._needed([plans[i]])))
    out["cache_lookup"] = cpu(lambda i: tree.cache.split(ids[i]))
    out["store_read"] = cpu(lambda i: st.read_nodes(miss[i]))
    out["rows_read"] = round(sum(map(len, miss.values())) / n, 1)
    out["resolve"] = cpu(lambda i: tree._resolve([plans[i]], found[i], needed[i][1]))
    out["json"] = cpu(lambda i: routes_log._inclusion_json(i, size, found[i][i], proofs[i]))
else:
    from ledger.tree.proofs import inclusion_ranges, proof_node_ids, resolve
    plans = {i: inclusion_ranges(i, size) for i in idx}
    ids = {i: [i, size - 1, *proof_node_ids(plans[i])] for i in idx}
    found = {i: st.read_nodes(ids[i]) for i in idx}
    proofs = {i: resolve(plans[i], found[i]) for i in idx}
    out["plan"] = cpu(lambda i: proof_node_ids(inclusion_ranges(i, size)))
    out["store_read"] = cpu(lambda i: st.read_nodes(ids[i]))
    out["rows_read"] = round(sum(map(len, ids.values())) / n, 1)
    out["resolve"] = cpu(lambda i: resolve(plans[i], found[i]))
    out["json"] = cpu(lambda i: routes_log._json({"index": i, "size": size, "leaf_hash": found[i][i].hex(),
                                                   "hashes": [h.hex() for h in proofs[i]]}))
print(json.dumps(out), flush=True)
led.close()
