"""Where things are: the ledger's home directory, its store URL, its operator.

Precedence: command-line option, then environment (`TAGLEDGER_HOME`, `TAGLEDGER_DB`,
`TAGLEDGER_PUBLIC_URL`), then `<home>/tagledger.json` (written by `tagledger init`), then defaults
(home `./var`, store `sqlite:///<home>/ledger.db`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

CONFIG_NAME = "tagledger.json"


@dataclass
class Settings:
    home: Path
    db: str
    operator: str = "operator"
    public_base_url: str = "http://127.0.0.1:8000"

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_NAME

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def initialised(self) -> bool:
        return self.config_path.exists()

    def save(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        data = {k: str(v) for k, v in asdict(self).items() if k != "home"}
        self.config_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def default_db(home: Path) -> str:
    return f"sqlite:///{(home / 'ledger.db').resolve()}"


def load_settings(home: str | None = None, db: str | None = None) -> Settings:
    home_path = Path(home or os.environ.get("TAGLEDGER_HOME") or "var").resolve()
    stored: dict[str, str] = {}
    config = home_path / CONFIG_NAME
    if config.exists():
        stored = json.loads(config.read_text(encoding="utf-8"))
    settings = Settings(
        home=home_path,
        db=db or os.environ.get("TAGLEDGER_DB") or stored.get("db") or default_db(home_path),
        operator=stored.get("operator", "operator"),
        public_base_url=os.environ.get("TAGLEDGER_PUBLIC_URL") or stored.get("public_base_url")
        or "http://127.0.0.1:8000",
    )
    return settings
