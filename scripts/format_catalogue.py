"""Rewrite message catalogue files (api/catalogue/*.json) in their reviewed layout: one key per line, in the
file's order, non-ASCII letters as they are, and the invisible no-break spaces (U+00A0, U+202F) as escapes so that
reviewers see them.

    .venv/bin/python scripts/format_catalogue.py api/catalogue/*.json
"""

import json
import sys


def encode(value: object) -> str:
    return json.dumps(value, ensure_ascii=False).replace("\u00a0", "\\u00a0").replace("\u202f", "\\u202f")


def main(paths: list[str]) -> None:
    for path in paths:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
        lines = [f" {encode(key)}: {encode(value)}" for key, value in document.items()]
        with open(path, "w", encoding="utf-8") as file:
            file.write("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
