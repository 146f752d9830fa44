"""The `tagledger` command.

    tagledger init                      create the ledger: operator root key, log key, store, genesis
    tagledger serve                     run the HTTP API (runs `init` first if needed)
    tagledger keygen --out FILE         make an organisation's Ed25519 key; prints the public key and kid
    tagledger org register|add-key|revoke-key ...   (operator) the key registry
    tagledger tags issue ORG ...        (operator) issue security tags to an organisation
    tagledger tags labels ...           (operator) sign QR labels locally and upload them
    tagledger record VERB ...           record attach/dispatch/receive/merge/split/consume/void/scan, signed locally
    tagledger record incident-report|incident-confirm|incident-dismiss|incident-close|action-assign|
                     action-progress|action-verify|site-monitor ...   risk and remediation (protocol section 16)
    tagledger tag TAG_ID                verify a tag
    tagledger demo                      load a realistic data set through the signed write path
    tagledger projection rebuild|status the projections (custody state, fraud flags)
    tagledger check                     the service's own consistency check (entries, Merkle tree, checkpoints)
    tagledger export --out FILE         a self-contained bundle for offline audit
    tagledger tiles sync DIR            mirror the log into DIR as static C2SP tlog-tiles (incremental; cron-safe)
    tagledger audit URL|BUNDLE          the auditor's independent replay (verification/, see --help)
    tagledger verify-report FILE        check a saved due-diligence report offline (verification/ only)

Commands that write go to `--url` (a running ledger, over HTTP) or, without it, to the store of this home.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger.client import HttpTransport, LedgerClient, LedgerError, LocalTransport, Signer, Transport
from ledger.config import Settings, load_settings
from ledger.genesis import DEFAULT_TOLERANCE_PPM, GenesisKeys, create_ledger, key_paths, new_log_origin
from ledger.health import CHECKPOINT_BOUND_SECONDS
from ledger.keys import KeyPair
from ledger.demo import DEMO_DAYS
from ledger.service import Ledger
from ledger.store.base import SchemaError
from verification.encoding import format_time, parse_time
from verification.note import NoteError, check_key_name


class CliError(Exception):
    pass


# --- init and serve --------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    if args.log_key_name is not None:
        try:
            check_key_name(args.log_key_name)
        except NoteError as exc:
            raise CliError(f"--origin {args.log_key_name!r} cannot name a log: {exc}") from None
    settings = load_settings(args.home, args.db)
    ledger = Ledger.open(settings.db)
    try:
        if ledger.store.size() > 0:
            params = ledger.registry().ledger
            print(f"Ledger already initialised at {settings.db} (operator {params.operator if params else '?'}, "
                  f"log origin {params.log_key_name if params else '?'}, {ledger.store.size()} entries).")
            if not settings.initialised and params is not None:
                settings.operator = params.operator
                settings.save()
            return 0
        origin = args.log_key_name or new_log_origin()
        root_path, log_path = key_paths(settings.home, args.operator)
        keys = GenesisKeys(_load_or_make(root_path), _load_or_make(log_path))
        receipt = create_ledger(
            ledger,
            name=args.name,
            operator=args.operator,
            operator_name=args.operator_name,
            country=args.country,
            log_key_name=origin,
            keys=keys,
            tolerance_ppm=args.tolerance_ppm,
            time=parse_time(args.genesis_time) if args.genesis_time else None,
        )
        settings.operator = args.operator
        if args.public_url:
            settings.public_base_url = args.public_url
        settings.save()
        print(f"Created ledger {args.name!r} at {settings.db}")
        print(f"  operator {args.operator}: root key {keys.root.kid} in {root_path}")
        print(f"  log key {keys.log.kid} in {log_path}, log origin {origin}")
        print(f"  genesis entry #{receipt.seq} {receipt.hash}")
        return 0
    finally:
        ledger.close()


def _load_or_make(path: Path) -> KeyPair:
    if path.exists():
        return KeyPair.load(path)
    pair = KeyPair.generate()
    pair.save(path)
    return pair


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the API: this process supervises `--workers` HTTP worker processes (uvicorn) and keeps the
    custody projection up to date, so that the projection never competes with requests for a worker's GIL."""
    import os

    import uvicorn

    from ledger import supervision  # not api/: the supervisor serves no request, its workers import the app
    from ledger.gc_tuning import tune_for_serving

    settings = load_settings(args.home, args.db)
    ledger = Ledger.open(settings.db)
    if ledger.store.size() == 0:
        ledger.close()
        cmd_init(_init_defaults(args))
        settings = load_settings(args.home, args.db)
        ledger = Ledger.open(settings.db)
    from ledger.consistency import quick_check

    damage = quick_check(ledger.store, ledger.identity().verifier)
    if damage is not None:
        ledger.close()
        raise CliError(f"refusing to serve: {damage}. Run `tagledger check` to find the altered entries.")
    os.environ[supervision.STORE_ENV] = settings.db  # the workers (spawned) inherit it
    _hand_read_replicas_to_workers(args)  # public reads from hot standbys (ledger/replicas.py)
    os.environ["TAGLEDGER_PUBLIC_URL"] = settings.public_base_url  # what QR labels link to (api.routes_labels)
    os.environ[supervision.CHECKPOINT_BOUND_ENV] = str(args.checkpoint_bound)  # api/write_guard.py, in the workers
    config = uvicorn.Config("api.asgi:create_app_from_env", factory=True, host=args.host, port=args.port,
                            log_level=args.log_level, workers=args.workers,
                            timeout_graceful_shutdown=supervision.DRAIN_TIMEOUT_SECONDS)
    try:
        ledger.start_projection()
        _start_checkpoints(ledger, settings, args.checkpoint_bound)
        sock = supervision.bind_socket(args.host, args.port,  # waits for a previous server's workers to let go
                                       on_wait=lambda message: print(message, file=sys.stderr, flush=True))
        print(f"tagledger serving {settings.db} on http://{args.host}:{args.port} with {args.workers} worker "
              f"process(es)  (API docs: /docs)", flush=True)
        with supervision.worker_metrics_dir(settings.home):
            tune_for_serving()
            supervision.Supervisor(config, sockets=[sock]).run()
    except supervision.PortInUse as exc:
        raise CliError(f"cannot serve: {exc.strerror}") from None
    finally:
        ledger.close()
    return 0


def _hand_read_replicas_to_workers(args: argparse.Namespace) -> None:
    """`--read-db URL` (repeatable; default $TAGLEDGER_READ_DB) and `--read-max-lag`, for the workers (api/asgi.py)."""
    import os

    from ledger.replicas import MAX_LAG_ENV, READ_DB_ENV, read_db_urls, redacted

    urls = args.read_db if args.read_db else read_db_urls(os.environ.get(READ_DB_ENV))
    for url in urls:
        if not url.startswith(("postgresql://", "postgres://")):
            raise CliError(f"--read-db {redacted(url)}: a read replica is a PostgreSQL hot standby (postgresql://...)")
    os.environ[READ_DB_ENV] = " ".join(urls)
    if args.read_max_lag is not None:
        os.environ[MAX_LAG_ENV] = str(args.read_max_lag)
    if urls:
        print(f"public reads from {len(urls)} replica(s): {', '.join(map(redacted, urls))}", flush=True)


def _start_checkpoints(ledger: Ledger, settings: Settings, bound: float) -> None:
    """Publish signed checkpoints from this process, with the log key kept in the ledger's home."""
    path = settings.keys_dir / "log.pem"
    if not path.exists():
        print(f"WARNING: no log key at {path}: this server signs no checkpoints. It accepts writes only while "
              f"another server on this store signs them: once an accepted entry has waited {bound:g} s for a "
              "checkpoint, writes are answered 503 log.checkpoint_stale", file=sys.stderr, flush=True)
        return
    ledger.start_checkpoints(KeyPair.load(path))


def _bound_seconds(text: str) -> float:
    value = float(text)
    if not 2 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text}: give a number of seconds from 2 to 3600")
    return value


DEFAULT_WORKERS = 1
"""HTTP worker processes of `serve`. On the 2-core machines of docs/benchmarks.md a second worker gained nothing
beyond the noise between runs (the other core runs PostgreSQL and the projection); give more cores more."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


DEV_GENESIS_AGE = timedelta(days=DEMO_DAYS + 30)


def _init_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """`init` on first use by `serve` or `demo`: a development ledger whose genesis is dated back far enough
    that the demo's two months of history (signed by keys registered after genesis) can carry real dates."""
    genesis = datetime.now(timezone.utc) - DEV_GENESIS_AGE
    print(f"First use: creating a development ledger (genesis dated {genesis:%Y-%m-%d}, "
          f"{DEV_GENESIS_AGE.days} days back, so demo data can carry realistic dates).")
    return argparse.Namespace(
        home=args.home, db=args.db, operator="itsci", operator_name="Programme operator", country="CD",
        name="tagledger", log_key_name=None, tolerance_ppm=DEFAULT_TOLERANCE_PPM,
        public_url=None, genesis_time=format_time(genesis),
    )


# --- keys, registry, tags ------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    path = Path(args.out)
    if path.exists():
        raise CliError(f"{path} exists; refusing to overwrite a private key")
    pair = KeyPair.generate()
    pair.save(path)
    print(json.dumps({"private_key_file": str(path), "public_key": pair.public_key, "kid": pair.kid}, indent=2))
    return 0


@contextmanager
def _transport(args: argparse.Namespace, settings: Settings) -> Iterator[Transport]:
    """A running ledger over HTTP (`--url`), or this home's store in-process (closed afterwards)."""
    if getattr(args, "url", None):
        yield HttpTransport(args.url)
        return
    ledger = Ledger.open(settings.db)
    try:
        yield LocalTransport(ledger)
    finally:
        ledger.close()


@contextmanager
def _operator_client(args: argparse.Namespace) -> Iterator[LedgerClient]:
    settings = load_settings(args.home, args.db)
    key_file = Path(args.key) if getattr(args, "key", None) else key_paths(settings.home, settings.operator)[0]
    if not key_file.exists():
        raise CliError(f"no operator key at {key_file}: run `tagledger init` or pass --key")
    with _transport(args, settings) as transport:
        yield LedgerClient(transport, Signer(settings.operator, KeyPair.load(key_file)))


def cmd_org(args: argparse.Namespace) -> int:
    with _operator_client(args) as client:
        if args.org_command == "register":
            extra = {k: v for k, v in {"rmi_cid": args.rmi_cid, "operated_by": args.operated_by,
                                       "capacity_kg_per_month": args.capacity_kg_per_month}.items() if v}
            if args.lat and args.lon:
                extra["gps"] = {"lat": args.lat, "lon": args.lon}
            result = client.register_org(args.org, args.name, args.role, args.country, args.public_key, **extra)
        elif args.org_command == "add-key":
            result = client.add_key(args.org, args.public_key)
        else:
            result = client.revoke_key(args.org, args.kid, args.reason, effective=args.effective)
    print(json.dumps(result, indent=2))
    return 0


def cmd_tags(args: argparse.Namespace) -> int:
    if not args.tag and not args.prefix:
        raise CliError("give --tag ID (repeatable) or --prefix P --count N")
    with _operator_client(args) as client:
        result = client.issue_tags(args.org, tags=args.tag or None, prefix=args.prefix, start=args.start,
                                   count=args.count, width=args.width)
    print(json.dumps(result, indent=2))
    return 0


def cmd_tag_labels(args: argparse.Namespace) -> int:
    """Sign the labels of tags with the operator's key, here, and upload the signatures (protocol section 13)."""
    from ledger.client.labels import upload_labels

    if not args.tag and not args.prefix:
        raise CliError("give --tag ID (repeatable) or --prefix P --count N")
    tags = list(args.tag or [])
    if args.prefix:
        if not 1 <= args.count <= 1_000_000:
            raise CliError("--count N (1 to 1,000,000) with --prefix")
        tags += [args.prefix + str(args.start + i).zfill(args.width) for i in range(args.count)]
    settings = load_settings(args.home, args.db)
    key_file = Path(args.key) if args.key else key_paths(settings.home, settings.operator)[0]
    if not key_file.exists():
        raise CliError(f"no operator key at {key_file}: pass --key OPERATOR.pem")
    with _transport(args, settings) as transport:
        result = upload_labels(transport, KeyPair.load(key_file), tags, origin=args.origin)
    base = (args.url or settings.public_base_url).rstrip("/")
    sheet = (f"prefix={args.prefix}&start={args.start}&count={min(args.count, 60)}&width={args.width}"
             if args.prefix and not args.tag else f"tags={','.join(tags[:60])}")
    print(json.dumps({**result, "qr": f"{base}/v1/tags/{tags[0]}/qr.svg",
                      "sheet": f"{base}/v1/labels/sheet.svg?{sheet}"}, indent=2))
    return 0


# --- recording custody ---------------------------------------------------------------------------


def cmd_record(args: argparse.Namespace) -> int:
    settings = load_settings(args.home, args.db)
    signer = Signer(args.org, KeyPair.load(Path(args.key)))
    with _transport(args, settings) as transport:
        result = _record(args, LedgerClient(transport, signer))
    print(json.dumps(result, indent=2))
    return 0


def _record(args: argparse.Namespace, client: LedgerClient) -> dict[str, Any]:
    """Sign and send the event a `record` verb names."""
    verb = args.verb
    if verb in RISK_VERBS:
        return _record_risk(args, client)
    if verb == "attach":
        gps = {"lat": args.lat, "lon": args.lon} if args.lat and args.lon else None
        price = {"currency": args.currency, "minor_per_kg": args.price_minor_per_kg} \
            if args.price_minor_per_kg is not None else None
        result = client.attach(args.tag, mineral=args.mineral, mass_g=args.mass_g, pit=args.pit, ore=args.ore,
                               gps=gps, price_paid=price)
    elif verb == "dispatch":
        result = client.dispatch(args.tag, args.to, mass_g=args.mass_g, location=args.location)
    elif verb == "receive":
        result = client.receive(args.tag, mass_g=args.mass_g, location=args.location)
    elif verb == "merge":
        result = client.merge(args.lot, args.inputs, mass_g=args.mass_g)
    elif verb == "split":
        outputs = {}
        for item in args.output:
            tag, _, grams = item.partition("=")
            if not grams.isdigit():
                raise CliError(f"--output takes TAG=GRAMS, not {item!r}")
            outputs[tag] = int(grams)
        result = client.split(args.lot, outputs)
    elif verb == "consume":
        result = client.consume(args.tag, mass_g=args.mass_g, product=args.product)
    elif verb == "scan":
        result = client.scan(args.tag, gps={"lat": args.lat, "lon": args.lon}, location=args.location,
                             purpose=args.purpose)
    else:
        result = client.void(args.tag, args.reason, note=args.note)
    return result


# --- recording risk and remediation (protocol section 16) ------------------------------------------

RISK_VERBS = ("incident-report", "incident-confirm", "incident-dismiss", "incident-close", "action-assign",
              "action-progress", "action-verify", "site-monitor")
CATEGORIES = ["child_labour", "health_safety", "forced_labour", "armed_groups", "security_forces", "chain_of_custody",
              "environment", "governance"]
SEVERITIES = ["low", "medium", "high", "critical"]
CONCERNS = ["price", "payment_delay", "safety", "health", "water", "harassment", "illegal_taxation", "land_access",
            "equipment", "finance", "childcare", "other"]


def _evidence(paths: list[str] | None) -> list[dict[str, str]] | None:
    """Evidence items for files kept locally: only their content hash, media type and name go in the log."""
    import hashlib
    import mimetypes

    items = []
    for name in paths or []:
        path = Path(name)
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise CliError(f"--evidence {name}: {exc.strerror or exc}") from None
        media = (mimetypes.guess_type(path.name)[0] or "application/octet-stream").lower()
        items.append({"sha256": digest, "media_type": media, "name": path.name[:120]})
    return items or None


def _record_risk(args: argparse.Namespace, client: LedgerClient) -> dict[str, Any]:
    result = _record_risk_event(args, client)
    if getattr(args, "evidence", None) and not args.keep_evidence:  # the files go up sealed (protocol 16.2)
        incident = args.incident
        uploaded = []
        for item, name in zip(_evidence(args.evidence) or [], args.evidence):
            client.transport.put_evidence(incident, item["sha256"], item["media_type"], Path(name).read_bytes())
            uploaded.append(item["sha256"])
        result = {**result, "evidence_uploaded": uploaded}
    return result


def _record_risk_event(args: argparse.Namespace, client: LedgerClient) -> dict[str, Any]:
    verb = args.verb
    if verb == "incident-report":
        from verification.sealed_details import DetailsError, commitment, new_details

        gps = {"lat": args.lat, "lon": args.lon} if args.lat and args.lon else None
        try:
            details = new_details(args.description, gps=gps, notes=args.notes)
        except DetailsError as exc:
            raise CliError(f"sealed details: {exc}") from None
        occurred = format_time(parse_time(args.occurred_at) if args.occurred_at else datetime.now(timezone.utc))
        optional = {"worst_forms": True if args.worst_forms else None, "summary": args.summary,
                    "people_affected": args.people_affected, "referred_to": args.referred_to,
                    "evidence": _evidence(args.evidence)}
        receipt = client.report_incident(args.incident, site=args.site, category=args.category,
                                         severity=args.severity, occurred_at=occurred,
                                         details_sha256=commitment(details),
                                         **{k: v for k, v in optional.items() if v is not None})
        # the signed report carries the commitment only; the details go to the ledger, outside the log
        uploaded = client.transport.put_details(args.incident, details)
        return {**receipt, "details_sha256": uploaded["details_sha256"], "details_uploaded": True}
    if verb == "incident-confirm":
        optional = {"severity": args.severity, "note": args.note, "evidence": _evidence(args.evidence)}
        return client.confirm_incident(args.incident, **{k: v for k, v in optional.items() if v is not None})
    if verb == "incident-dismiss":
        return client.dismiss_incident(args.incident, args.reason)
    if verb == "incident-close":
        return client.close_incident(args.incident, args.resolution)
    if verb == "action-assign":
        cycle = args.cycle or datetime.now(timezone.utc).strftime("%Y-%m")
        return client.assign_action(args.incident, args.action, owner=args.owner, description=args.description,
                                    cycle=cycle)
    if verb == "action-progress":
        return client.report_progress(args.incident, args.action, args.note, percent=args.percent,
                                      evidence=_evidence(args.evidence))
    if verb == "action-verify":
        return client.verify_action(args.incident, args.action, args.outcome, note=args.note,
                                    evidence=_evidence(args.evidence))
    observed: dict[str, Any] = {"minors_observed": args.minors, "reference_source": args.reference_source,
                                "concerns": args.concern, "note": args.note}
    if args.price_paid is not None:
        observed["price_paid"] = {"currency": args.currency, "minor_per_kg": args.price_paid}
    if args.reference_price is not None:
        observed["reference_price"] = {"currency": args.currency, "minor_per_kg": args.reference_price}
    if (args.women is None) != (args.men is None):
        raise CliError("give both --women and --men (the workforce by sex), or neither")
    if args.women is not None:
        observed["workforce"] = {"women": args.women, "men": args.men}
    period = args.period or datetime.now(timezone.utc).strftime("%Y-%m")
    return client.monitor_site(args.site, period, **{k: v for k, v in observed.items() if v is not None})


def _risk_parsers(rsub: Any, target: Any) -> None:
    """`tagledger record <risk verb>`: one subcommand per risk event (the monitor, the operator, an owner)."""
    helps = {
        "incident-report": "(monitor) report an incident; --description is sealed: only its hash is signed, "
                           "the details are uploaded to the ledger for authorised readers",
        "incident-confirm": "(monitor) confirm a reported incident (optionally re-grade its severity)",
        "incident-dismiss": "(monitor or operator) dismiss a reported incident after checking",
        "incident-close": "(monitor or operator) close a confirmed incident whose actions are all implemented",
        "action-assign": "(operator) assign a corrective action to an owner, due by the end of a month",
        "action-progress": "(the action's owner) report progress, with evidence files (only hashed)",
        "action-verify": "(monitor) verify an action: implemented or not_implemented",
        "site-monitor": "(monitor) the monthly record of a site: prices, workforce, minors, miners' concerns",
    }
    q: dict[str, argparse.ArgumentParser] = {name: rsub.add_parser(name, help=text, description=text)
                                             for name, text in helps.items()}
    for name, parser in q.items():
        parser.add_argument("--org", required=True, help="your organisation id")
        parser.add_argument("--key", required=True, help="your private key file")
        target(parser)
        if name != "site-monitor":
            parser.add_argument("incident", help="the incident id, e.g. INC-2026-0042")
        if name.startswith("action-"):
            parser.add_argument("action", help="the action id within the incident, e.g. A1")
        if name in {"incident-report", "incident-confirm", "action-progress", "action-verify"}:
            parser.add_argument("--evidence", action="append", metavar="FILE",
                                help="a photo or document: its sha256 is in the signed record, the file is uploaded "
                                     "sealed, for authorised readers only (repeatable)")
            parser.add_argument("--keep-evidence", action="store_true",
                                help="record the files' hashes only, and keep the files yourself")
    r = q["incident-report"]
    r.add_argument("--site", required=True)
    r.add_argument("--category", required=True, choices=CATEGORIES)
    r.add_argument("--severity", required=True, choices=SEVERITIES)
    r.add_argument("--description", required=True, help="what happened (sealed, 1 to 4000 characters)")
    r.add_argument("--notes", help="more sealed notes")
    r.add_argument("--lat", help="precise position (sealed)")
    r.add_argument("--lon")
    r.add_argument("--occurred-at", help="when it happened (RFC 3339; default now)")
    r.add_argument("--summary", help="a public summary (at most 200 characters)")
    r.add_argument("--worst-forms", action="store_true", help="child labour in its worst forms (ILO C182)")
    r.add_argument("--people-affected", type=int)
    r.add_argument("--referred-to", help="the remediation partner (organisation id)")
    q["incident-confirm"].add_argument("--severity", choices=SEVERITIES)
    q["incident-confirm"].add_argument("--note")
    q["incident-dismiss"].add_argument("--reason", required=True)
    q["incident-close"].add_argument("--resolution", required=True)
    q["action-assign"].add_argument("--owner", required=True, help="the organisation that must act")
    q["action-assign"].add_argument("--description", required=True)
    q["action-assign"].add_argument("--cycle", help="YYYY-MM: due by the end of this month (default: this month)")
    q["action-progress"].add_argument("--note", required=True)
    q["action-progress"].add_argument("--percent", type=int)
    q["action-verify"].add_argument("--outcome", required=True, choices=["implemented", "not_implemented"])
    q["action-verify"].add_argument("--note")
    m = q["site-monitor"]
    m.add_argument("site")
    m.add_argument("--period", help="YYYY-MM (default: this month)")
    m.add_argument("--price-paid", type=int, help="what miners were paid, minor units (cents) per kg")
    m.add_argument("--reference-price", type=int, help="the reference price, minor units per kg")
    m.add_argument("--currency", default="USD")
    m.add_argument("--reference-source", help='e.g. "LME cash, less 30%% for transport"')
    m.add_argument("--women", type=int)
    m.add_argument("--men", type=int)
    m.add_argument("--minors", type=int, help="minors observed on the site")
    m.add_argument("--concern", action="append", choices=CONCERNS, help="raised by the miners (repeatable)")
    m.add_argument("--note")


# --- reading -------------------------------------------------------------------------------------


def cmd_tag(args: argparse.Namespace) -> int:
    settings = load_settings(args.home, args.db)
    with _transport(args, settings) as transport:
        document = transport.tag(args.tag_id.upper())
    if document is None:
        print(f"UNKNOWN: no tag {args.tag_id} was ever issued. Treat the material as untraced.")
        return 3
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(_describe(document))
    return 0 if document["verdict"]["authentic"] else 4


def _describe(document: dict[str, Any]) -> str:
    state = document["state"]
    lines = [f"{document['tag']}: {document['verdict']['summary']}"]
    if state.get("mass_kg"):
        lines.append(f"  mass: {state['mass_kg']} kg")
    for origin in document["origins"][:10]:
        lines.append(f"  origin: {origin['site_name'] or origin['site']}, pit {origin['pit']}, {origin['mineral']},"
                     f" tagged {origin['attached_at']} ({origin['tag']})")
    if len(document["origins"]) > 10:
        lines.append(f"  ... and {len(document['origins']) - 10} more bags")
    if state.get("lot"):
        lines.append(f"  went into lot {state['lot']}")
    if state.get("inputs"):
        lines.append(f"  made of {len(state['inputs'])} tags: {', '.join(state['inputs'][:8])}"
                     + (" ..." if len(state["inputs"]) > 8 else ""))
    lines.append("  history:")
    for event in document["events"]:
        lines.append(f"    #{event['seq']:<6} {event['time']}  {event['type']:<20} by {event['actor_name'] or event['actor']}")
    return "\n".join(lines)


def cmd_rmap_report(args: argparse.Namespace) -> int:
    """The refiner's RMAP input report (docs/protocol.md section 21): from this home's store, or `--url`."""
    from ledger import rmap_report

    if getattr(args, "url", None):
        import httpx

        response = httpx.get(f"{args.url.rstrip('/')}/v1/reports/rmap/{args.refiner}", trust_env=False, timeout=300,
                             params={"from": args.start, "to": args.end, "format": args.format,
                                     **({"lang": args.lang} if args.lang else {})})
        if response.status_code != 200:
            problem = response.json() if response.headers.get("content-type", "").startswith("application/") else {}
            print(f"refused: {problem.get('rule', response.status_code)}: {problem.get('detail', response.text[:200])}",
                  file=sys.stderr)
            return 3 if response.status_code == 404 else 2
        body = response.content
    else:
        try:
            period = rmap_report.parse_period(args.start, args.end)
        except rmap_report.PeriodError as error:
            print(f"refused: report.invalid_period: {error}", file=sys.stderr)
            return 2
        settings = load_settings(args.home, args.db)
        ledger = Ledger.open(settings.db)
        try:
            ledger.start_projection(follow=False)  # read only: what it has not folded is read from the log
            report = rmap_report.rmap_input_report(ledger, args.refiner, period)
        finally:
            ledger.close()
        if report is None:
            print(f"refused: org.unknown_refiner: no smelter or refiner {args.refiner} is registered", file=sys.stderr)
            return 3
        if args.format == "csv":
            body = rmap_report.csv_text(report).encode("utf-8")
        elif args.format == "xlsx":
            from api.routes_rmap import xlsx_bytes

            body = xlsx_bytes(report, args.lang or "en")
        else:
            body = (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    if args.out:
        Path(args.out).write_bytes(body)
        print(f"Wrote {args.out} ({len(body)} bytes).")
    elif args.format == "xlsx":
        print("an XLSX workbook is binary: give --out FILE", file=sys.stderr)
        return 2
    else:
        sys.stdout.write(body.decode("utf-8"))
    return 0


# --- demo and projections --------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from ledger.demo import load_demo

    settings = load_settings(args.home, args.db)
    root_path = key_paths(settings.home, settings.operator)[0]
    if not settings.initialised or not root_path.exists():
        cmd_init(_init_defaults(args))
        settings = load_settings(args.home, args.db)
        root_path = key_paths(settings.home, settings.operator)[0]
    with _transport(args, settings) as transport:
        report = load_demo(transport, Signer(settings.operator, KeyPair.load(root_path)),
                           tags_per_site=args.tags_per_site, seed=args.seed)
    demo_keys = settings.keys_dir / "demo"
    for org, pair in report.keys.items():
        path = demo_keys / f"{org}.pem"
        if not path.exists():
            pair.save(path)
    print(report.summary())
    print(f"\nThe demo organisations' private keys are in {demo_keys}.")
    return 0


def cmd_projection(args: argparse.Namespace) -> int:
    """Bring the projections up to date (after dropping them, with `rebuild`) and show where they stand: the
    custody projection (with the digest an auditor's replay reproduces) and the fraud flags projection."""
    from ledger.flags import FlagsProjection
    from ledger.projection import CustodyProjection

    settings = load_settings(args.home, args.db)
    ledger = Ledger.open(settings.db)
    try:
        custody, flags = CustodyProjection(ledger.store), FlagsProjection(ledger.store)
        report = {}
        for name, projection in (("custody", custody), ("flags", flags)):
            if args.projection_command == "rebuild":
                projection.drop()
            processed = projection.catch_up()
            report[name] = {**projection.summary(), "processed": processed}
        print(json.dumps(report, indent=2))
        return 0
    finally:
        ledger.close()


def cmd_check(args: argparse.Namespace) -> int:
    """Recompute the Merkle tree from the stored entries; compare with the stored tree and every checkpoint."""
    from ledger.consistency import check_store

    settings = load_settings(args.home, args.db)
    ledger = Ledger.open(settings.db)
    try:
        report = check_store(ledger.store, ledger.identity().verifier,
                             progress=None if args.quiet else _progress_printer("checking"))
    finally:
        ledger.close()
    if report.ok:
        print(f"OK: {report.entries} entries and {report.checkpoints} signed checkpoints are consistent.")
        return 0
    where = (f"first bad entry: #{report.first_bad_seq}" if report.first_bad_seq is not None else
             f"altered entries within [{report.suspect_range[0]}, {report.suspect_range[1]})" if report.suspect_range
             else "see below")
    print(f"FAILED: {len(report.problems)} problem(s); {where}", file=sys.stderr)
    for problem in report.problems[:20]:
        print(f"  {problem}", file=sys.stderr)
    return 1


def cmd_export(args: argparse.Namespace) -> int:
    """Write a self-contained audit bundle (docs/protocol.md section 12)."""
    from ledger.bundle import export_bundle

    settings = load_settings(args.home, args.db)
    ledger = Ledger.open(settings.db)
    try:
        log_key = settings.keys_dir / "log.pem"
        if log_key.exists():  # sign a checkpoint of everything there is, so the bundle holds all of it
            ledger.start_checkpoints(KeyPair.load(log_key), publish_in_background=False)
        summary = export_bundle(ledger, Path(args.out), progress=None if args.quiet else _progress_printer("exporting"))
    finally:
        ledger.close()
    print(f"Wrote {args.out}: {summary.entries} entries, checkpoint of size {summary.checkpoint_size}"
          f", projection digest at {summary.projection_position}.")
    return 0


def cmd_tiles_sync(args: argparse.Namespace) -> int:
    """Mirror the log into a directory of static tiles (docs/protocol.md section 19), up to its latest checkpoint."""
    from ledger.tiles_mirror import MirrorError, sync_tiles

    settings = load_settings(args.home, args.db)
    ledger = Ledger.open(settings.db)
    try:
        log_key = settings.keys_dir / "log.pem"
        if log_key.exists() and not args.no_sign:  # sign a checkpoint of everything there is (as the service does)
            ledger.start_checkpoints(KeyPair.load(log_key), publish_in_background=False)
        summary = sync_tiles(ledger.store, ledger.identity(), Path(args.dir),
                             progress=None if args.quiet else _progress_printer("mirroring"))
    except MirrorError as error:
        raise CliError(str(error)) from None
    except LookupError as error:
        raise CliError(f"{error}: create the ledger first (`tagledger init`)") from None
    except OSError as error:
        raise CliError(f"cannot write the tiles into {args.dir}: {error.strerror or error}") from None
    finally:
        ledger.close()
    if not args.quiet:
        print(summary.describe(Path(args.dir)))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """`tagledger audit URL|BUNDLE`: the auditor's replay, from `verification.audit` (which needs none of the
    server's code; `python -m verification.audit` runs the same thing), with the server's signature checker:
    libsodium first, OpenSSL for what it refuses, the same verdicts (ledger/fast_signatures.py)."""
    from verification.audit import main as audit_main

    return audit_main(args.audit_args, signature_checker="ledger.fast_signatures:SignatureChecker")


def cmd_verify_report(args: argparse.Namespace) -> int:
    """`tagledger verify-report FILE [--log-key VKEY]`: check a saved due-diligence report offline, with
    `verification.dd_report` only (no server, none of the server's code)."""
    from verification.dd_report import main as verify_main

    return verify_main([args.file, *(["--log-key", args.log_key] if args.log_key else [])])


def _progress_printer(label: str):  # noqa: ANN202
    def show(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{label}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    return show


# --- argument parsing ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tagledger", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="ledger home directory (default $TAGLEDGER_HOME or ./var)")
    parser.add_argument("--db", help="store URL: sqlite:///path or postgresql://... (default from home)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create the ledger")
    p.add_argument("--operator", default="itsci", help="operator organisation id")
    p.add_argument("--operator-name", default="Programme operator")
    p.add_argument("--country", default="CD")
    p.add_argument("--name", default="tagledger", help="the ledger's name")
    p.add_argument("--origin", "--log-key-name", dest="log_key_name", metavar="ORIGIN",
                   help="the log's origin, which names it in its checkpoints and is its note key's name: unique to "
                        "this ledger, e.g. ledger.example.org/log (default: tagledger.local/<random id>/log)")
    p.add_argument("--tolerance-ppm", type=int, default=DEFAULT_TOLERANCE_PPM, help="mass tolerance (ppm)")
    p.add_argument("--public-url", help="public base URL (for QR codes)")
    p.add_argument("--genesis-time", help="date the genesis event (RFC 3339, e.g. to import earlier records)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("serve", help="run the HTTP API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info")
    p.add_argument("--workers", type=_positive_int, default=DEFAULT_WORKERS,
                   help=f"HTTP worker processes (default {DEFAULT_WORKERS}; see docs/benchmarks.md)")
    p.add_argument("--checkpoint-bound", type=_bound_seconds, default=CHECKPOINT_BOUND_SECONDS, metavar="SECONDS",
                   help="refuse writes (503 log.checkpoint_stale) once an accepted entry has waited this long for a "
                        f"signed checkpoint (default {CHECKPOINT_BOUND_SECONDS:g}; docs/protocol.md section 20)")
    p.add_argument("--read-db", action="append", metavar="URL",
                   help="a PostgreSQL hot standby that public reads are sent to (repeatable; default "
                        "$TAGLEDGER_READ_DB, URLs separated by spaces); docs/deployment.md")
    p.add_argument("--read-max-lag", type=_positive_float, metavar="SECONDS",
                   help="take a replica out while it lags the primary by more than this (default 5)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("keygen", help="make an Ed25519 key for an organisation")
    p.add_argument("--out", required=True, help="private key file to create (PEM, mode 0600)")
    p.set_defaults(func=cmd_keygen)

    def target(q: argparse.ArgumentParser) -> None:
        q.add_argument("--url", help="a running ledger's base URL (default: this home's store, in-process)")

    p = sub.add_parser("org", help="(operator) organisations and keys")
    osub = p.add_subparsers(dest="org_command", required=True)
    q = osub.add_parser("register")
    q.add_argument("org")
    q.add_argument("--name", required=True)
    q.add_argument("--role", required=True,
                   choices=["site", "cooperative", "trader", "processor", "exporter", "refiner", "auditor", "monitor",
                            "authority", "partner"])
    q.add_argument("--country", required=True)
    q.add_argument("--public-key", action="append", required=True)
    q.add_argument("--rmi-cid")
    q.add_argument("--operated-by")
    q.add_argument("--capacity-kg-per-month", type=int)
    q.add_argument("--lat")
    q.add_argument("--lon")
    q = osub.add_parser("add-key")
    q.add_argument("org")
    q.add_argument("--public-key", required=True)
    q = osub.add_parser("revoke-key")
    q.add_argument("org")
    q.add_argument("--kid", required=True)
    q.add_argument("--reason", required=True)
    q.add_argument("--effective", help="time from which the key is revoked (default: now)")
    for q in osub.choices.values():
        target(q)
        q.add_argument("--key", help="operator key file (default: the home's root key)")
    p.set_defaults(func=cmd_org)

    p = sub.add_parser("tags", help="(operator) issue security tags")
    tsub = p.add_subparsers(dest="tags_command", required=True)
    q = tsub.add_parser("issue")
    q.add_argument("org", help="the organisation (site) the tags are issued to")
    q.add_argument("--tag", action="append", help="a single tag id (repeatable)")
    q.add_argument("--prefix", help="range prefix, e.g. KAL-")
    q.add_argument("--start", type=int, default=1)
    q.add_argument("--count", type=int, default=0)
    q.add_argument("--width", type=int, default=6)
    q.add_argument("--key", help="operator key file (default: the home's root key)")
    target(q)
    q = tsub.add_parser("labels", help="sign QR labels with the operator's key (locally) and upload them")
    q.add_argument("--tag", action="append", help="a single tag id (repeatable)")
    q.add_argument("--prefix", help="range prefix, e.g. KAL-")
    q.add_argument("--start", type=int, default=1)
    q.add_argument("--count", type=int, default=0)
    q.add_argument("--width", type=int, default=6)
    q.add_argument("--key", help="operator key file (default: the home's root key)")
    q.add_argument("--origin", help="the ledger's origin you expect (refuse to sign for another log)")
    target(q)
    q.set_defaults(func=cmd_tag_labels)
    p.set_defaults(func=cmd_tags)

    p = sub.add_parser("record", help="record a custody event (or a scan of a tag), signed with your key")
    rsub = p.add_subparsers(dest="verb", required=True)
    verbs = {name: rsub.add_parser(name) for name in
             ["attach", "dispatch", "receive", "merge", "split", "consume", "void", "scan"]}
    for name, q in verbs.items():
        q.add_argument("--org", required=True, help="your organisation id")
        q.add_argument("--key", required=True, help="your private key file")
        target(q)
        if name in {"attach", "dispatch", "receive", "consume", "void", "scan"}:
            q.add_argument("tag")
    verbs["attach"].add_argument("--mineral", required=True, choices=["cobalt", "copper", "tin", "tantalum", "tungsten"])
    verbs["attach"].add_argument("--mass-g", type=int, required=True)
    verbs["attach"].add_argument("--pit", required=True)
    verbs["attach"].add_argument("--ore")
    verbs["attach"].add_argument("--lat")
    verbs["attach"].add_argument("--lon")
    verbs["attach"].add_argument("--price-minor-per-kg", type=int)
    verbs["attach"].add_argument("--currency", default="USD")
    verbs["dispatch"].add_argument("--to", required=True)
    verbs["dispatch"].add_argument("--mass-g", type=int)
    verbs["dispatch"].add_argument("--location")
    verbs["receive"].add_argument("--mass-g", type=int, required=True)
    verbs["receive"].add_argument("--location")
    verbs["merge"].add_argument("lot")
    verbs["merge"].add_argument("inputs", nargs="+")
    verbs["merge"].add_argument("--mass-g", type=int, required=True)
    verbs["split"].add_argument("lot")
    verbs["split"].add_argument("--output", action="append", required=True, help="TAG=GRAMS (repeat)")
    verbs["consume"].add_argument("--mass-g", type=int)
    verbs["consume"].add_argument("--product")
    verbs["void"].add_argument("--reason", required=True, choices=["lost", "stolen", "damaged", "other"])
    verbs["void"].add_argument("--note")
    verbs["scan"].description = ("record that your organisation saw the physical tag here (any role, any tag status; "
                                 "a scan after the tag's end, or too far from its last position, flags it)")
    verbs["scan"].add_argument("--lat", required=True, help="where the tag was seen (decimal degrees)")
    verbs["scan"].add_argument("--lon", required=True)
    verbs["scan"].add_argument("--location", help="the place, in words (e.g. Kigali airport)")
    verbs["scan"].add_argument("--purpose", choices=["customs", "inspection", "purchase", "monitoring", "other"])
    _risk_parsers(rsub, target)
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("tag", help="verify a tag")
    p.add_argument("tag_id")
    p.add_argument("--json", action="store_true", help="print the whole verification document")
    target(p)
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("rmap-report", help="a refiner's RMAP input report over a period (JSON, CSV or XLSX)")
    p.add_argument("refiner")
    p.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD (UTC), included")
    p.add_argument("--format", choices=["json", "csv", "xlsx"], default="json")
    p.add_argument("--lang", choices=["en", "fr", "sw"], help="language of the XLSX headings (default: English)")
    p.add_argument("--out", help="write to this file (required for XLSX)")
    target(p)
    p.set_defaults(func=cmd_rmap_report)

    p = sub.add_parser("demo", help="load a realistic demo data set")
    p.add_argument("--tags-per-site", type=int, default=60)
    p.add_argument("--seed", type=int, default=7)
    target(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("projection", help="the custody projection")
    psub = p.add_subparsers(dest="projection_command", required=True)
    psub.add_parser("rebuild", help="drop the projections (custody, flags) and rebuild them from the log")
    psub.add_parser("status", help="bring them up to date and show where they stand (custody digest, flags)")
    p.set_defaults(func=cmd_projection)

    p = sub.add_parser("check", help="the service's own consistency check: entries, Merkle tree, checkpoints")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("export", help="write a self-contained bundle for offline audit")
    p.add_argument("--out", required=True, help="the bundle file to write (a .zip)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("tiles", help="the log as static C2SP tlog-tiles, for any web server or CDN")
    tsub = p.add_subparsers(dest="tiles_command", required=True)
    q = tsub.add_parser("sync", help="mirror the log into DIR, incrementally (safe from cron while the service writes)",
                        description="Write the tiles, entry bundles and checkpoint of the log's latest signed "
                                    "checkpoint into DIR (docs/protocol.md section 19): only what changed since the "
                                    "last sync; every file written atomically, the checkpoint last.")
    q.add_argument("dir", help="the directory to mirror into (served as the tiles' URL prefix)")
    q.add_argument("--no-sign", action="store_true",
                   help="do not sign a new checkpoint first, even if this home holds the log key")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_tiles_sync)

    # Everything after `audit` goes to verification.audit as it is (`--help`, `--vkey K URL`, ...): with "\0" as
    # its only option prefix, which no command-line argument can contain, this parser takes none for its own.
    p = sub.add_parser("audit", help="replay and verify a ledger (URL) or a bundle, offline, independently",
                       add_help=False, prefix_chars="\0")
    p.add_argument("audit_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("verify-report", help="check a saved due-diligence report (JSON) offline: signatures, "
                                             "proofs against its signed checkpoint, and every fact against them")
    p.add_argument("file", help="the saved JSON report (GET /v1/reports/due-diligence/{tag})")
    p.add_argument("--log-key", help="pin the log's verifier key (note format, as GET /v1/log/key gives it)")
    p.set_defaults(func=cmd_verify_report)
    return parser


def _glue_key_values(argv: Sequence[str]) -> list[str]:
    """`--public-key -Abc…`: a base64url key may start with '-', which argparse would take for an option."""
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        if items[i] == "--public-key" and i + 1 < len(items):
            out.append(f"--public-key={items[i + 1]}")
            i += 2
            continue
        out.append(items[i])
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_glue_key_values(sys.argv[1:] if argv is None else argv))
    try:
        return args.func(args)
    except (CliError, LedgerError, SchemaError) as exc:  # SchemaError: a store whose log is no longer append-only
        print(f"tagledger: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
