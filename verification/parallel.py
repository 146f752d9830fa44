"""Replaying a large log on several cores: the stateless checks in worker processes, the rest in order.

:func:`replay_entries` gives exactly what :func:`verification.replay.replay_sequential` gives (same
result, same :class:`~verification.replay_errors.ReplayError` at the same entry), faster:

- the calling process reads the entries and sends them, in chunks of ``chunk_size``, to ``workers``
  processes in turn (chunk ``n`` to worker ``n % workers``, at most ``depth`` chunks in flight per worker);
- each worker runs :func:`verification.entry_checks.check_entry` on its chunk: parsing, the canonical
  check, the structure and data checks, the envelope and Merkle leaf hashes, the event-id fingerprint and
  the Ed25519 signature check -- nearly all the CPU time of a replay;
- the calling process takes the results back in log order and runs the sequential checks and folds of
  :class:`verification.replay.Replayer` (seq, received, ids, registry, streams, time, custody rules).

Which key must verify an event is only known in order (the registry as of that point). But a ``kid``
names one key (it is a hash of the key, and the ledger refuses a key already registered), and keys are
registered before they are used. So before sending a chunk, the calling process looks in it for events
that register keys (a byte search, then a parse of the few that may) and sends each worker every
(kid, public key) it has not sent it yet; the worker checks each signature with the key its ``kid``
names. The sequential check then accepts a worker's verdict only if the worker used the very key the
registry holds for that kid at that point; otherwise (a key registered later, another organisation's key,
a forged registration) it checks the signature itself from the entry's bytes, which it keeps until the
chunk is done. So the verdicts are the sequential ones, whatever the workers were told.

Memory: the chunks in flight (``workers * depth * chunk_size`` entries), the key hints (one per key),
and what the sequential replay keeps (see :mod:`verification.replay`).

Worker processes are started with the ``spawn`` method by default (safe in a process with threads);
a script that calls this must guard its entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import json
import marshal
import os
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from itertools import islice
from typing import TYPE_CHECKING, Any

from verification.collector import freeze_startup, rare_collections
from verification.encoding import decode_public_key, key_id
from verification.entry_checks import CheckedEntry, EntryProblem, check_entry, normalize_time, signature_checker
from verification.replay import ReplayResult, Replayer, Snapshot, _checked_time, replay_sequential

if TYPE_CHECKING:  # `multiprocessing` is imported only when workers are started: importing it aliases
    from multiprocessing.context import BaseContext  # `__main__` as `__mp_main__`, which an import audit flags

__all__ = ["replay_entries", "state_as_of"]

_KEY_MARKS = (b'"public_key', b'"root_key"')
_as_checked = tuple.__new__  # CheckedEntry from the plain tuple a worker sent, without a Python-level call
_POLL_SECONDS = 1.0


def _may_register_keys(raws: list[bytes]) -> bool:
    """False if no entry of ``raws`` can register a key: neither mark occurs anywhere in them (one search over the
    chunk instead of two per entry; a mark made by the joining of two entries only costs the search per entry)."""
    joined = b"".join(raws)
    return _KEY_MARKS[0] in joined or _KEY_MARKS[1] in joined


def _key_hints(raw: bytes) -> list[tuple[str, bytes]]:
    """(kid, raw public key) of every key the entry may register; [] for anything else (even garbage)."""
    if _KEY_MARKS[0] not in raw and _KEY_MARKS[1] not in raw:
        return []
    try:
        body = json.loads(raw)["envelope"]["body"]
        data = body["data"]
        kind = body["type"]
        if kind == "ledger_created":
            texts = [data["root_key"]]
        elif kind == "org_registered":
            texts = list(data["public_keys"])
        elif kind == "key_added":
            texts = [data["public_key"]]
        else:
            return []
        return [(key_id(public), public) for public in map(decode_public_key, texts)]
    except Exception:  # noqa: BLE001 - a hint is only a hint: the worker's checks will judge the entry
        return []


def _work(tasks: Any, results: Any, id_key: bytes, checker: str | None = None) -> None:
    """A worker process: check each chunk of entries with the key hints received so far, and write the results
    to ``results`` (the write end of a pipe that only the calling process reads). ``checker``: the signature
    checker factory's dotted path (:func:`verification.entry_checks.signature_checker`)."""
    freeze_startup()  # the worker's entries are freed by reference counting: collect rarely (verification.collector)
    keys: dict[str, bytes] = {}
    signatures = signature_checker(checker)
    lookup = keys.get
    send = results.send_bytes
    while True:
        task = tasks.get()
        if task is None:
            return
        number, raws, hints = task
        for kid, public in hints:
            keys.setdefault(kid, public)
        try:
            out: list[tuple[Any, ...]] = []
            problem = None
            for raw in raws:
                checked = check_entry(raw, lookup, id_key, signatures)
                if type(checked) is EntryProblem:
                    problem = tuple(checked)
                    break  # the replay stops at this entry
                out.append(tuple(checked))
            # marshal: the results are plain tuples, dicts, lists, str, bytes, int, bool and None (a decoded
            # entry has no floats); it writes and reads them 2-3 times faster than pickle. They go straight into
            # the pipe (no queue, no feeder thread); the calling process reads them in chunk order. Only this
            # worker's own output is ever unmarshalled.
            blob = marshal.dumps((number, out, problem, None))
        except BaseException:  # noqa: BLE001 - report it to the calling process, which raises it
            blob = marshal.dumps((number, None, None, traceback.format_exc()))
        send(blob)


class _Workers:
    """``count`` worker processes, each with a task queue and a result pipe of its own."""

    def __init__(self, count: int, id_key: bytes, context: BaseContext, checker: str | None = None) -> None:
        # Tasks go through a queue: its feeder thread writes them, so this process never blocks on a full pipe
        # while a worker blocks writing its results. Results come back through a pipe of their own per worker,
        # read here in chunk order.
        self.tasks = [context.Queue() for _ in range(count)]
        pipes = [context.Pipe(duplex=False) for _ in range(count)]  # (read end, write end)
        self.results = [reader for reader, _ in pipes]
        self.processes = [
            context.Process(target=_work, args=(self.tasks[i], pipes[i][1], id_key, checker), daemon=True,
                            name=f"tagledger-replay-{i}")
            for i in range(count)
        ]
        try:
            for process in self.processes:
                process.start()
        except BaseException:
            self.close(drained=False)
            raise
        finally:
            for _, writer in pipes:
                writer.close()  # only the workers write (whether one is alive is asked of its process)

    def send(self, worker: int, task: tuple[Any, ...]) -> None:
        self.tasks[worker].put(task)

    def receive(self, worker: int) -> tuple[int, Any, Any, str | None]:
        """The next result of ``worker``: (chunk number, results, problem, traceback or None)."""
        results = self.results[worker]
        while True:
            try:
                if results.poll(_POLL_SECONDS):
                    return marshal.loads(results.recv_bytes())  # type: ignore[no-any-return]
            except (EOFError, OSError):
                pass  # it exited: said below
            if not self.processes[worker].is_alive():
                raise RuntimeError(f"replay worker {worker} died (exit code "
                                   f"{self.processes[worker].exitcode})") from None

    def close(self, *, drained: bool) -> None:
        """Stop the workers: politely if every result was taken, at once otherwise."""
        if drained:
            for tasks in self.tasks:
                tasks.put(None)
            for process in self.processes:
                process.join(timeout=10)
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                process.terminate()
                process.join(timeout=10)
        for q in self.tasks:
            if not drained:
                q.cancel_join_thread()  # do not wait to flush tasks nobody will read
            q.close()
        for results in self.results:
            results.close()


def replay_entries(
    entries: Iterable[bytes],
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    stop_after_seq: int | None = None,
    stop_at_time: str | None = None,
    snapshot_at: int | None = None,
    pinned_root_key: bytes | None = None,
    pinned_log_key: bytes | None = None,
    pinned_log_key_name: str | None = None,
    id_key: bytes | None = None,
    chunk_size: int = 1000,
    depth: int = 2,
    mp_context: BaseContext | str | None = None,
    observe: Callable[[CheckedEntry, int], None] | None = None,
    signature_checker: str | None = None,
) -> ReplayResult:
    """Replay ``entries`` (each log entry's exact bytes, in log order) with ``workers`` processes.

    ``workers`` defaults to ``os.cpu_count()``; ``0`` replays in this process alone
    (:func:`verification.replay.replay_sequential`). ``progress(n)`` is called with the number of entries
    replayed after each chunk. ``stop_after_seq``, ``stop_at_time``, ``snapshot_at`` and the pins are as
    for :func:`~verification.replay.replay_sequential`, and so is ``observe`` (called in this process, in log
    order); ``entries`` is not read past ``stop_after_seq``. ``signature_checker``: the dotted path of a factory of
    signature checkers, made in this process and in each worker (:func:`verification.entry_checks.signature_checker`;
    None: OpenSSL through ``cryptography``).
    Raises :class:`~verification.replay_errors.ReplayError` at the first entry that breaks a rule.
    """
    if workers is None:
        workers = os.cpu_count() or 1
    options: dict[str, Any] = dict(
        stop_after_seq=stop_after_seq, stop_at_time=stop_at_time, snapshot_at=snapshot_at,
        pinned_root_key=pinned_root_key, pinned_log_key=pinned_log_key,
        pinned_log_key_name=pinned_log_key_name, id_key=id_key, observe=observe,
        signature_checker=signature_checker,
    )
    with rare_collections():  # millions of short-lived containers, no cycles (verification.collector)
        return _replay(entries, workers, progress, chunk_size, depth, mp_context, options)


def _replay(
    entries: Iterable[bytes],
    workers: int,
    progress: Callable[[int], None] | None,
    chunk_size: int,
    depth: int,
    mp_context: BaseContext | str | None,
    options: dict[str, Any],
) -> ReplayResult:
    if workers <= 0:
        return replay_sequential(entries, progress=progress, progress_every=chunk_size, **options)
    stop_after_seq, stop_at_time = options["stop_after_seq"], options["stop_at_time"]
    snapshot_at = options["snapshot_at"]
    pinned_root_key, pinned_log_key = options["pinned_root_key"], options["pinned_log_key"]
    pinned_log_key_name, id_key, observe = options["pinned_log_key_name"], options["id_key"], options["observe"]
    signature_checker = options["signature_checker"]
    if chunk_size < 1 or depth < 1:
        raise ValueError("chunk_size and depth must be at least 1")
    replayer = Replayer(pinned_root_key=pinned_root_key, pinned_log_key=pinned_log_key,
                        pinned_log_key_name=pinned_log_key_name, id_key=id_key, observe=observe,
                        signature_checker=signature_checker)
    time_limit = None if stop_at_time is None else normalize_time(_checked_time(stop_at_time))
    remaining = None if stop_after_seq is None else max(stop_after_seq + 1, 0)
    if remaining == 0:
        return replayer.result(None, "stop_after_seq")
    if isinstance(mp_context, str) or mp_context is None:
        import multiprocessing

        mp_context = multiprocessing.get_context(mp_context or "spawn")

    pool = _Workers(workers, replayer.id_key, mp_context, signature_checker)
    drained = False
    try:
        snapshot, stopped = _run(pool, workers, replayer, iter(entries), chunk_size, depth, remaining, time_limit,
                                 snapshot_at, progress)
        drained = stopped is None or stopped == "stop_after_seq"
    finally:
        pool.close(drained=drained)
    return replayer.result(snapshot, stopped)


def _run(
    pool: _Workers,
    workers: int,
    replayer: Replayer,
    entries: Any,
    chunk_size: int,
    depth: int,
    remaining: int | None,
    time_limit: str | None,
    snapshot_at: int | None,
    progress: Callable[[int], None] | None,
) -> tuple[Snapshot | None, str | None]:
    hints: list[tuple[str, bytes]] = []
    hinted: set[str] = set()
    sent = [0] * workers
    in_flight: deque[tuple[int, list[bytes]]] = deque()
    number = 0
    exhausted = False
    snapshot = None
    while True:
        while not exhausted and len(in_flight) < workers * depth:
            want = chunk_size if remaining is None else min(chunk_size, remaining)
            raws = [raw if type(raw) is bytes else bytes(raw) for raw in islice(entries, want)]
            if remaining is not None:
                remaining -= len(raws)
            if len(raws) < want or remaining == 0:
                exhausted = True
            if not raws:
                break
            if _may_register_keys(raws):
                for raw in raws:
                    for kid, public in _key_hints(raw):
                        if kid not in hinted:
                            hinted.add(kid)
                            hints.append((kid, public))
            worker = number % workers
            pool.send(worker, (number, raws, hints[sent[worker]:]))
            sent[worker] = len(hints)
            in_flight.append((number, raws))
            number += 1
        if not in_flight:
            stopped = "stop_after_seq" if remaining == 0 else None
            return snapshot, stopped
        expected, raws = in_flight.popleft()
        got, items, problem, failure = pool.receive(expected % workers)
        if failure is not None:
            raise RuntimeError(f"replay worker failed on chunk {expected}:\n{failure}")
        if got != expected:  # pragma: no cover - each worker answers its chunks in order
            raise RuntimeError(f"replay worker answered chunk {got}, expected {expected}")
        apply = replayer.apply
        for item, raw in zip(items, raws):
            checked = _as_checked(CheckedEntry, item)
            if time_limit is not None and checked.received > time_limit:
                return snapshot, "stop_at_time"
            apply(checked, raw)
            if snapshot_at is not None and replayer.size == snapshot_at + 1:
                snapshot = replayer.snapshot()
        if problem is not None:  # the entry after the last result: raises ReplayError
            apply(_as_checked(EntryProblem, problem), raws[len(items)])
        if progress is not None:
            progress(replayer.size)


def state_as_of(
    entries: Iterable[bytes],
    *,
    seq: int | None = None,
    time: str | None = None,
    workers: int | None = None,
    **options: Any,
) -> ReplayResult:
    """The ledger as of log entry ``seq`` (after it), or as of ``time`` (before the first entry received
    after it), or both (whichever comes first): a checked replay that stops there. Its ``state(tag)`` is a
    tag's state then, its ``digest``/``rows()`` the whole ledger's."""
    return replay_entries(entries, workers=workers, stop_after_seq=seq, stop_at_time=time, **options)
