"""Every sentence the phone app shows is in the shared catalogue, in every language (api/catalogue/): the keys its
JavaScript names, the keys it builds from the actions, fields and roles of js/forms.js, and an explanation with a
"what to do" for every rule the ledger can refuse a record with (docs/protocol.md section 7)."""

from __future__ import annotations

import re
from pathlib import Path

from api.i18n import CATALOGUE, LANGUAGES
from api.routes_app import APP_DIR
from domain.roles import Role

JS = {path.relative_to(APP_DIR / "js").as_posix(): path.read_text(encoding="utf-8")
      for path in (APP_DIR / "js").rglob("*.js")}
RULES = Path(__file__).parents[2] / "docs" / "protocol.md"


def _forms_values(name: str) -> list[str]:
    """The quoted strings of a constant array in js/forms.js."""
    match = re.search(rf"export const {name} = \[([^\]]*)\]", JS["forms.js"])
    return re.findall(r'"([a-z_]+)"', match.group(1))


def wanted() -> set[str]:
    keys = {key for text in JS.values() for key in re.findall(r'\bt\("([a-z_.]+)"', text)}
    forms = JS["forms.js"]
    actions = re.findall(r'\bid: "([a-z]+)", roles:', forms)
    assert len(actions) == 10, actions
    keys |= {f"app_action_{a}" for a in actions} | {f"app_action_{a}_hint" for a in actions}
    keys |= {f"app_field_{name}" for name in re.findall(r'\bname: "([a-z_]+)"', forms)}
    keys |= {f"app_field_{name}" for name in re.findall(r'(?:tag|text)\("([a-z_]+)"', forms)}
    keys |= {f"app_key_{status}" for status in ("registered", "not_registered", "revoked", "unknown_org")}
    keys |= {f"app_label_{label}" for label in ("valid", "invalid", "unchecked", "typed", "foreign")}
    keys |= {f"role_{role.value}" for role in Role}
    keys |= {f"concern_{c}" for c in _forms_values("CONCERNS")}
    keys |= {f"mineral_{m}" for m in _forms_values("MINERALS")} | {f"reason_{r}" for r in _forms_values("VOID_REASONS")}
    keys |= {f"purpose_{p}" for p in _forms_values("PURPOSES")} | {f"risk_cat_{c}" for c in _forms_values("CATEGORIES")}
    keys |= {f"risk_sev_{s}" for s in _forms_values("SEVERITIES")}
    return keys


def test_every_key_the_app_uses_is_in_every_language() -> None:
    keys = wanted()
    assert len(keys) > 200
    for lang in LANGUAGES:
        missing = sorted(key for key in keys if key not in CATALOGUE[lang] and f"{key}_other" not in CATALOGUE[lang])
        assert not missing, (lang, missing)


def test_every_refusal_is_explained_with_what_to_do() -> None:
    section = RULES.read_text(encoding="utf-8").split("## 7. Rules", 1)[1].split("## 8. Errors", 1)[0]
    rules = set(re.findall(r"`([a-z_]+\.[a-z_]+)` —", section))
    assert {"key.revoked", "stream.conflict", "custody.not_holder", "mass.gain", "action.not_owner"} <= rules
    for lang in LANGUAGES:
        for rule in rules:
            assert CATALOGUE[lang].get(f"problem_{rule}") and CATALOGUE[lang].get(f"problem_{rule}_next"), (lang, rule)
    # the brief's wording for a revoked key: the phone's key, and recording again with a registered key
    assert "this phone's key was revoked" in CATALOGUE["en"]["problem_key.revoked"]
    assert "recorded again by a registered key" in CATALOGUE["en"]["problem_key.revoked_next"]
