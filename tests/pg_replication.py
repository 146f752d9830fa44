"""A PostgreSQL primary and its hot standby of the tests' own, on loopback ports, removed afterwards.

`primary_and_standby()` uses the server binaries of the PostgreSQL packages (`pg_config --bindir`: `initdb`,
`pg_ctl`, `pg_basebackup`): it creates a primary cluster in a temporary directory (WAL archiving on, into
`archive/`), a database `tagledger` in it, then a standby with `pg_basebackup -R` (streaming replication, hot
standby), and starts both. On exit both are stopped (`pg_ctl stop -m immediate`, then SIGKILL of whatever
postmaster is left) and the directory is removed, whatever happened. The machine's own cluster is never touched.

PostgreSQL refuses to run as root: as root, every server command runs as the `postgres` user (`runuser`), in a
directory that user owns. `fsync=off` on these throw-away clusters (nothing here survives a crash of the machine);
`tests/test_replication.py` and `bench/replica_reads.py` use them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

DATABASE = "tagledger"
START_TIMEOUT = 60


def bindir() -> Path:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        return Path(out)
    except (OSError, subprocess.CalledProcessError):
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup) are not installed")
        return found[-1].parent


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def run_as_owner(command: list[str], *, timeout: float = 120) -> str:
    done = subprocess.run(_as_owner(command), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stdout[-800:]} {done.stderr[-800:]}")
    return done.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    """One PostgreSQL server: its data directory, loopback port and log file."""

    name: str
    data: Path
    port: int
    socket_dir: Path

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.name}.log"

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = DATABASE) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database, autocommit=True,
                               connect_timeout=5)

    def start(self) -> None:
        run_as_owner([str(bindir() / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                      "-t", str(START_TIMEOUT), "-o", f"-p {self.port} -k {self.socket_dir}", "start"],
                     timeout=START_TIMEOUT + 30)

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m mode`; whatever postmaster is still there afterwards is killed."""
        try:
            run_as_owner([str(bindir() / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"],
                         timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def kill(self) -> None:
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def running(self) -> bool:
        try:
            with self.connect("postgres") as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False


@dataclass
class Pair:
    primary: Cluster
    standby: Cluster
    root: Path

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    def pause_replay(self) -> None:
        with self.standby.connect() as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
            # pausing is asynchronous: wait until replay has stopped
            deadline = time.monotonic() + 30
            while conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0] != "paused":
                if time.monotonic() > deadline:
                    raise RuntimeError("the standby's replay did not pause")
                time.sleep(0.02)

    def resume_replay(self) -> None:
        with self.standby.connect() as conn:
            conn.execute("SELECT pg_wal_replay_resume()")

    def wait_replayed(self, timeout: float = 30) -> None:
        """Until the standby has replayed everything the primary has flushed so far."""
        with self.primary.connect() as conn:
            target = conn.execute("SELECT pg_current_wal_flush_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        with self.standby.connect() as conn:
            while not conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the standby did not replay up to {target} in {timeout} s")
                time.sleep(0.02)


PRIMARY_SETTINGS = """
listen_addresses = '127.0.0.1'
max_connections = 80
shared_buffers = 32MB
fsync = off
wal_level = replica
max_wal_senders = 5
wal_keep_size = 128MB
hot_standby = on
archive_mode = on
archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f'
logging_collector = off
"""


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(path, user.pw_uid, user.pw_gid)


@contextmanager
def primary_and_standby() -> Iterator[Pair]:
    """A running primary (database `tagledger`, WAL archived into `root/archive`) and its hot standby."""
    root = Path(tempfile.mkdtemp(prefix="tagledger-pg-"))
    os.chmod(root, 0o700)
    _own(root)
    (root / "archive").mkdir()
    _own(root / "archive")
    primary = Cluster("primary", root / "primary", free_port(), root)
    standby = Cluster("standby", root / "standby", free_port(), root)
    try:
        run_as_owner([str(bindir() / "initdb"), "-D", str(primary.data), "-U", "postgres", "--auth=trust",
                      "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"], timeout=180)
        with (primary.data / "postgresql.conf").open("a") as conf:
            conf.write(PRIMARY_SETTINGS.format(archive=root / "archive"))
        primary.start()
        with primary.connect("postgres") as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        make_standby(primary, standby)
        yield Pair(primary, standby, root)
    finally:
        for cluster in (standby, primary):
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def make_standby(primary: Cluster, standby: Cluster) -> None:
    """`pg_basebackup -R` of `primary` into `standby.data`, then start it as a hot standby."""
    run_as_owner([str(bindir() / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                  "-D", str(standby.data), "-R", "-X", "stream", "-c", "fast", "--no-sync"], timeout=180)
    standby.start()
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with standby.connect() as conn:
                if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return
        except psycopg.Error:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the standby did not come up as a hot standby: {standby.log.read_text()[-1000:]}")
        time.sleep(0.1)


# -- backups and the restore drill (docs/deployment.md, "Backups and the restore drill") ---------------------


def base_backup(primary: Cluster, dest: Path) -> None:
    """`pg_basebackup -Ft -z -X stream -c fast`: a compressed tar of the cluster and the WAL needed to start it."""
    run_as_owner([str(bindir() / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                  "-D", str(dest), "-Ft", "-z", "-X", "stream", "-c", "fast"], timeout=180)


def archive_current_wal(primary: Cluster, timeout: float = 60) -> None:
    """`SELECT pg_switch_wal()`, then wait until the archiver has copied that segment (what `archive_timeout`
    does periodically in production)."""
    with primary.connect("postgres") as conn:
        segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
        deadline = time.monotonic() + timeout
        while (conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0] or "") < segment:
            if time.monotonic() > deadline:
                raise RuntimeError(f"WAL segment {segment} was not archived in {timeout} s")
            time.sleep(0.05)


def restore(backup: Path, archive: Path, target: Cluster) -> None:
    """Point-in-time recovery to the end of the archive: unpack the base backup into `target.data`, ask for
    recovery (`recovery.signal`, `restore_command` copying from `archive`), start, wait until promoted."""
    target.data.mkdir(mode=0o700)
    _own(target.data)
    run_as_owner(["tar", "-xzf", str(backup / "base.tar.gz"), "-C", str(target.data)])
    run_as_owner(["tar", "-xzf", str(backup / "pg_wal.tar.gz"), "-C", str(target.data / "pg_wal")])
    run_as_owner(["touch", str(target.data / "recovery.signal")])
    with (target.data / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"restore_command = 'cp {archive}/%f %p'\nrecovery_target_action = 'promote'\n")
    target.start()
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with target.connect() as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return
        except psycopg.Error:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the restored cluster was not promoted: {target.log.read_text()[-1000:]}")
        time.sleep(0.1)
