"""The auditor's replay: `python -m verification.audit URL|BUNDLE` (also `tagledger audit`).

Checks a whole ledger without trusting the server that serves it, with nothing but the published formats
(docs/protocol.md) and the `cryptography` package:

1. the log key: pinned by the auditor (`--vkey`), or the one remembered from an earlier audit of this log,
   or else trusted on first use (and then remembered), with a warning;
2. the latest checkpoint: a signed note by that key (C2SP tlog-checkpoint / signed-note);
3. consistency with the checkpoint the auditor kept from its previous audit (`--state-dir`, or `--previous`):
   the server's RFC 9162 consistency proof, and the replayed entries themselves reproduce the old root, so a
   rewritten, reordered, truncated or forked log fails here;
4. the replay (`verification.parallel`): every entry canonical and in sequence, every signature against the
   key registry as it stood at that point, every `prev`/`links` hash, the custody fold;
5. the Merkle root of the replayed entries against the signed checkpoint; if they differ, the stored leaf
   hashes (authenticated by the checkpoint) name the first entry that does not match;
6. the custody projection's digest that the server reports, against the replay's at the same position;
7. the refused attempts the ledger keeps as evidence of reused tags (`verification.refused_attempts`): each one
   signed by a key valid then, on a tag already ended, with the standing the replay finds (protocol 9.1).

The source may also be a static tlog-tiles host (`verification.tiles_source`, docs/protocol.md section 19): then
every hash tile is checked against the entries too, and an altered one is named.

`python -m verification.audit` verifies signatures with OpenSSL (`cryptography`); `tagledger audit` gives the
replay the server's checker, libsodium first and OpenSSL for whatever libsodium refuses, self-tested to give the
same verdicts (ledger/fast_signatures.py). The report names which one verified (`signature_engine` in --json).

Exit status: 0 all good, 1 the log failed a check (the first bad entry is named), 2 the audit could not run.
"As of" mode (`--as-of N` or `--as-of-time T`) replays only up to that point and shows the ledger, or one tag
(`--tag`), as it stood then.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verification.canonical import jcs
from verification.entry_checks import signature_checker
from verification.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from verification.merkle import CompactRange, ProofError, leaf_hash, root_from_leaf_hashes, verify_consistency
from verification.note import NoteError, NoteVerifier, parse_vkey
from verification.parallel import replay_entries
from verification.refused_attempts import AttemptProblem, AttemptWatch, PublishedAttempt, check_attempts
from verification.replay import ReplayResult
from verification.replay_errors import ReplayError
from verification.sources import LogSource, ProjectionClaim, SourceError, SourceMismatch, open_source

EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()
DEFAULT_STATE_DIR = Path.home() / ".tagledger" / "audit"
PROJECTION_WAIT_SECONDS = 10.0
ENGINES = {  # a signature checker's `engine`, in the report's words
    "openssl": "Ed25519 verified by OpenSSL (the cryptography package)",
    "libsodium+openssl": "Ed25519 verified by libsodium (PyNaCl), and by OpenSSL (the cryptography package) "
                         "whenever libsodium refuses: the same verdicts, self-tested on the published edge cases",
}


class AuditFailed(Exception):
    """The log failed a check; `seq` is the first bad entry when one can be named."""

    def __init__(self, message: str, seq: int | None = None):
        super().__init__(message)
        self.seq = seq


@dataclass
class Report:
    source: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None
    first_bad_entry: int | None = None
    size: int | None = None
    signature_engine: str | None = None  # what verified the signatures: a key of ENGINES

    def add(self, step: str, text: str) -> None:
        self.lines.append((step, text))

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "ok": self.failure is None, "failure": self.failure,
                "first_bad_entry": self.first_bad_entry, "size": self.size,
                "signature_engine": self.signature_engine,
                "steps": [{"step": s, "result": t} for s, t in self.lines], "warnings": self.warnings}

    def render(self) -> str:
        out = [f"tagledger audit of {self.source}"]
        out += [f"  {step:<12} {text}" for step, text in self.lines]
        out += [f"  WARNING      {w}" for w in self.warnings]
        out.append("RESULT: OK" if self.failure is None else f"RESULT: FAILED: {self.failure}")
        return "\n".join(out)


# -- trust: the log key and the checkpoint kept from the last audit --------------------------------------


def _state_path(state_dir: Path, origin: str, what: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in origin)
    return state_dir / f"{safe}.{what}"


def _trusted_key(args: argparse.Namespace, source: LogSource, report: Report) -> NoteVerifier:
    served = source.keys()
    if args.vkey:
        text = Path(args.vkey[1:]).read_text().strip() if args.vkey.startswith("@") else args.vkey
        pinned = parse_vkey(text)
        if served.vkey != pinned.vkey():
            raise AuditFailed(f"the source's log key {served.vkey} is not the pinned key {pinned.vkey()}")
        report.add("log key", f"{pinned.vkey()} (pinned)")
        return pinned
    remembered = _state_path(args.state_dir, served.origin, "vkey") if args.state_dir else None
    if remembered is not None and remembered.exists():
        kept = parse_vkey(remembered.read_text().strip())
        if kept.vkey() != served.vkey:
            raise AuditFailed(f"the log key changed: this log ({served.origin}) was audited with {kept.vkey()}, "
                              f"it now presents {served.vkey}")
        report.add("log key", f"{kept.vkey()} (as in the previous audit)")
        return kept
    verifier = parse_vkey(served.vkey)
    report.warnings.append("the log key was not pinned (--vkey) and is trusted on first use; compare it with the "
                           "one the programme publishes")
    report.add("log key", f"{served.vkey} (trusted on first use)")
    return verifier


def _previous_checkpoint(args: argparse.Namespace, verifier: NoteVerifier) -> tuple[Checkpoint, str] | None:
    if args.previous:
        path = Path(args.previous)
    elif args.state_dir:
        path = _state_path(args.state_dir, verifier.name, "checkpoint")
    else:
        return None
    if not path.exists():
        return None
    note = path.read_text(encoding="utf-8")
    try:
        return open_checkpoint(note, verifier), str(path)
    except CheckpointError as error:
        raise AuditFailed(f"the checkpoint kept in {path} does not verify with the log key: {error}") from None


def _remember(args: argparse.Namespace, verifier: NoteVerifier, note: str) -> None:
    if not args.state_dir:
        return
    args.state_dir.mkdir(parents=True, exist_ok=True)
    _state_path(args.state_dir, verifier.name, "vkey").write_text(verifier.vkey() + "\n")
    _state_path(args.state_dir, verifier.name, "checkpoint").write_text(note, encoding="utf-8")


# -- the audit -------------------------------------------------------------------------------------------


class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.start = total, enabled, time.monotonic()

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / self.total) if self.total else width
        rate = done / max(time.monotonic() - self.start, 1e-9)
        print(f"\r  replay [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}  {rate:,.0f} entries/s",
              end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            print(file=sys.stderr, flush=True)


def _with_root_at(entries: Iterator[bytes], size: int, found: dict[str, bytes]) -> Iterator[bytes]:
    """Pass entries through, recording the Merkle root of the first `size` of them in found["root"]."""
    prefix = CompactRange()
    if size == 0:
        found["root"] = prefix.root()
    for raw in entries:
        if prefix.size < size:
            prefix.append(leaf_hash(raw))
            if prefix.size == size:
                found["root"] = prefix.root()
        yield raw


def _projection_claim(source: LogSource, checkpoint_size: int, report: Report) -> ProjectionClaim | None:
    claim = source.projection()
    if claim is None:
        report.warnings.append("the source states no custody projection digest to compare with")
    elif claim.position > checkpoint_size:
        report.warnings.append(f"the server's projection (position {claim.position}) is ahead of the checkpoint "
                               f"({checkpoint_size}); its digest was not compared")
        return None
    return claim


def _published_attempts(source: LogSource, size: int) -> list[PublishedAttempt] | None:
    """The refused attempts the source publishes that the checkpoint's log can judge (refused when the log held at
    most `size` entries), or None if it publishes none."""
    published = source.refused_attempts()
    if published is None:
        return None
    try:
        attempts = [PublishedAttempt.from_json(doc) for doc in published]
    except AttemptProblem as problem:
        raise AuditFailed(str(problem)) from None
    return [a for a in attempts if a.log_size <= size]


def _where(source: LogSource, seq: int) -> str:
    where = source.locate(seq)
    return f" ({where})" if where else ""


def _name_bad_leaf(source: LogSource, checkpoint: Checkpoint) -> int | None:
    """The first entry whose leaf hash differs from the stored one, if the stored ones reproduce the signed root."""
    stored = list(source.leaf_hashes(0, checkpoint.size)) if checkpoint.size <= 2_000_000 else None
    if stored is None or len(stored) != checkpoint.size or root_from_leaf_hashes(stored) != checkpoint.root_hash:
        return None
    for seq, raw in enumerate(source.entries(0, checkpoint.size)):
        if leaf_hash(raw) != stored[seq]:
            return seq
    return None


def audit(args: argparse.Namespace, source: LogSource, report: Report) -> ReplayResult | None:
    verifier = _trusted_key(args, source, report)
    note = source.checkpoint()
    try:
        checkpoint = open_checkpoint(note, verifier)
    except CheckpointError as error:
        raise AuditFailed(f"the checkpoint does not verify: {error}") from None
    report.add("checkpoint", f"size {checkpoint.size}, root {checkpoint.root_hash.hex()}, signature OK")
    as_of = args.as_of is not None or args.as_of_time is not None

    previous = None if as_of else _previous_checkpoint(args, verifier)
    if previous is not None:
        old, where = previous
        if old.size > checkpoint.size:
            raise AuditFailed(f"the log shrank: the checkpoint kept in {where} has size {old.size}, the current one "
                              f"{checkpoint.size} (a rollback or a fork)")
        proof = source.consistency_proof(old.size, checkpoint.size)
        if proof is not None:
            try:
                verify_consistency(old.size, checkpoint.size, old.root_hash, checkpoint.root_hash, proof)
            except ProofError as error:
                raise AuditFailed(f"the log is not an extension of the checkpoint kept in {where} (size {old.size}): "
                                  f"{error} (a fork or a rewrite)") from None
            report.add("consistency", f"size {old.size} -> {checkpoint.size}: the server's proof verifies")

    claim = None if as_of else _projection_claim(source, checkpoint.size, report)
    attempts = None if as_of else _published_attempts(source, checkpoint.size)
    watch = AttemptWatch({a.tag for a in attempts}) if attempts else None
    end = checkpoint.size if args.as_of is None else min(checkpoint.size, args.as_of)
    progress = _Progress(end, args.progress)
    roots: dict[str, bytes] = {}
    entries = source.entries(0, end)
    if previous is not None:
        entries = _with_root_at(entries, previous[0].size, roots)
    factory = getattr(args, "signature_checker", None)  # set by main's caller (tagledger audit), not an option
    report.signature_engine = engine = signature_checker(factory).engine
    report.add("signatures", ENGINES.get(engine, f"Ed25519 verified by {engine}"))
    started = time.monotonic()
    try:
        result = replay_entries(
            entries,
            workers=args.workers,
            progress=progress,
            stop_at_time=args.as_of_time,
            snapshot_at=(claim.position - 1) if claim is not None and claim.position > 0 else None,
            pinned_log_key=verifier.public_key_raw,
            pinned_log_key_name=verifier.name,
            observe=watch,
            signature_checker=factory,
        )
    except ReplayError as error:
        progress.done()
        raise AuditFailed(f"entry #{error.seq}{_where(source, error.seq)} breaks {error.rule}: {error.message}",
                          error.seq) from None
    progress.done()
    if result.size < end and result.stopped is None:
        raise AuditFailed(f"the source holds {result.size} entries, but the checkpoint covers {end}: entries "
                          f"#{result.size} and later are missing", result.size)
    elapsed = time.monotonic() - started
    report.size = result.size
    report.add("replay", f"{result.size} entries: canonical, in sequence, signed by keys valid at that point, hash "
                         f"links intact, custody folded ({result.size / max(elapsed, 1e-9):,.0f} entries/s, "
                         f"{args.workers if args.workers is not None else os.cpu_count()} worker process(es))")
    if as_of:
        report.add("as of", f"the ledger after {result.size} entries: {len(result)} tags {result.counts}, "
                            f"custody digest {result.digest}")
        return result

    if previous is not None:
        old = previous[0]
        if roots.get("root") != old.root_hash:
            raise AuditFailed(f"the first {old.size} entries do not reproduce the checkpoint kept from the previous "
                              "audit: history was rewritten")
        report.add("consistency", f"the replayed first {old.size} entries reproduce the kept checkpoint's root")

    if result.root != checkpoint.root_hash:
        bad = _name_bad_leaf(source, checkpoint)
        where = f"entry #{bad}{_where(source, bad)} was altered (its leaf hash differs from the one committed to)" \
            if bad is not None \
            else "the entry cannot be named (the source's stored tree does not match the checkpoint either)"
        raise AuditFailed(f"the entries do not reproduce the signed checkpoint's root: {where}", bad)
    report.add("merkle root", "the replayed entries reproduce the signed checkpoint's root")
    tiles = source.check_tiles(checkpoint)  # a static tiles host: its hash tiles against the entries
    if tiles is not None:
        report.add("tiles", tiles)

    if claim is not None:
        ours = EMPTY_DIGEST if claim.position == 0 else (
            result.snapshot.digest if result.snapshot is not None else None)
        if ours != claim.digest:
            raise AuditFailed(f"the server's custody projection at position {claim.position} has digest "
                              f"{claim.digest}; the replay's is {ours}")
        report.add("projection", f"the server's custody digest at position {claim.position} matches the replay "
                                 f"({claim.tags} tags)")
    if attempts is None:
        report.add("refused attempts", "not published by this source (a ledger or bundle before protocol 1.7)")
    else:
        try:
            counted, apart = check_attempts(attempts, watch or AttemptWatch(()), result.replayer.registry)
        except AttemptProblem as problem:
            raise AuditFailed(str(problem)) from None
        report.add("refused attempts", f"{len(attempts)} kept as evidence of reuse: signed by keys valid then, on "
                                       f"tags already ended, standing as the replay finds it ({counted} counted, "
                                       f"{apart} by organisations without standing)")
    _remember(args, verifier, note)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tagledger audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a ledger's base URL (http://host:port), a static tiles host's URL "
                                       "(the prefix of its /checkpoint) or an exported bundle (.zip)")
    parser.add_argument("--vkey", help="the log's verifier key to trust (C2SP vkey), or @FILE holding it")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help=f"where the log key and last checkpoint are remembered (default {DEFAULT_STATE_DIR})")
    parser.add_argument("--no-state", dest="state_dir", action="store_const", const=None,
                        help="do not read or remember anything between audits")
    parser.add_argument("--previous", help="a checkpoint note kept earlier, to check consistency with")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core; 0: none)")
    parser.add_argument("--as-of", type=int, help="replay only the first N entries and show the ledger then")
    parser.add_argument("--as-of-time", help="replay only the entries received at or before this time (RFC 3339)")
    parser.add_argument("--tag", action="append", default=[], help="show this tag's state (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress bar (default: when stderr is a terminal)")
    return parser


def main(argv: Sequence[str] | None = None, *, signature_checker: str | None = None) -> int:
    """The command line. ``signature_checker``: the dotted path of a signature checker factory for the replay
    (:func:`verification.entry_checks.signature_checker`; None, as ``python -m verification.audit`` runs it:
    OpenSSL through ``cryptography``)."""
    args = build_parser().parse_args(argv)
    args.signature_checker = signature_checker
    if args.progress is None:
        args.progress = sys.stderr.isatty()
    report = Report(args.source)
    status = 0
    result = None
    try:
        source = open_source(args.source)
    except SourceError as error:
        print(f"tagledger audit: {error}", file=sys.stderr)
        return 2
    try:
        result = audit(args, source, report)
    except AuditFailed as failure:
        report.failure, report.first_bad_entry, status = str(failure), failure.seq, 1
    except SourceMismatch as failure:  # an altered or missing tile of a static host
        report.failure, status = str(failure), 1
    except (SourceError, NoteError, ValueError, KeyError) as error:
        report.failure, status = f"the audit could not run: {error}", 2
    finally:
        source.close()
    tags = {}
    if result is not None:
        for tag in args.tag:
            state = result.state(tag)
            tags[tag] = None if state is None else json.loads(jcs(state.to_json()))
    if args.json:
        print(json.dumps({**report.to_json(), "tags": tags}, indent=2))
    else:
        print(report.render())
        for tag, state in tags.items():
            print(f"\n{tag}: " + ("never issued" if state is None else json.dumps(state, indent=2)))
    return status


if __name__ == "__main__":
    sys.exit(main())
