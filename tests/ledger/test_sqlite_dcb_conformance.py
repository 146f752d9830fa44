"""The SQLite DCB recorder passes the `eventsourcing` library's own DCB recorder test case."""

from __future__ import annotations

from eventsourcing.dcb.tests import DCBRecorderTestCase

from ledger.store.sqlite import SQLiteLogStore


class TestSQLiteDCBRecorder(DCBRecorderTestCase):
    def setUp(self) -> None:
        import tempfile

        self._tmp = tempfile.TemporaryDirectory()
        self.store = SQLiteLogStore(f"sqlite:///{self._tmp.name}/dcb.db")

    def tearDown(self) -> None:
        self.store.close()
        self._tmp.cleanup()

    def test_append_read(self) -> None:
        self._test_append_read(self.store.recorder)

    def test_append_subscribe(self) -> None:
        self._test_append_subscribe(self.store.recorder)
