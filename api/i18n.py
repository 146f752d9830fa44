"""The verification page's message catalogue (English and French), language negotiation and number formats.

Why a dict and not gettext/Babel: two languages and about a hundred short strings, read together in one file by
the people who review the French; no extraction or .po -> .mo compilation step in the build; and a unit test can
check that both languages define the same keys with the same `{placeholders}`. Catalogue strings are trusted
HTML-free text: `Messages.__call__` escapes them and every value put into them (markupsafe), so a name taken from
the ledger can never inject markup.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape

LANGUAGES = ("en", "fr")
DEFAULT = "en"

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        # page furniture
        "page_title": "Tag {tag} — tagledger verification",
        "site_name": "tagledger · custody verification",
        "tag_label": "Security tag",
        "language_switch": "Français",
        "check_other": "Another tag number",
        "check_button": "Check",
        "as_of_banner": "Historical view: this tag as the public log stood after its first {n} entries.",
        "as_of_current": "See the current state",
        # verdicts
        "verdict_in_custody": "Authentic — in the custody of {holder}",
        "verdict_issued": "Authentic tag, not yet put on a bag",
        "verdict_issued_detail": "Issued to {org}. No ore has been recorded under this tag yet.",
        "verdict_in_transit": "Authentic — in transit from {holder} to {recipient}",
        "verdict_merged": "Authentic — merged into lot {lot}",
        "verdict_merged_detail": "This bag's ore now travels under the lot's tag.",
        "verdict_split": "Authentic — split into {n} tags",
        "verdict_consumed": "Authentic — consumed at {refiner}",
        "verdict_consumed_detail": "The ore was processed at this smelter/refiner; the tag's life is over.",
        "verdict_voided": "VOIDED ({reason}) — do not accept material bearing this tag",
        "verdict_flagged": "FLAGGED — check before accepting",
        "verdict_flagged_detail_one": "1 warning below. Custody status: {status}",
        "verdict_flagged_detail_other": "{n} warnings below. Custody status: {status}",
        "verdict_unknown": "UNKNOWN TAG — never issued by this ledger",
        "verdict_unknown_detail": "No tag {tag} was ever issued. Treat the material as untraced.",
        "verdict_unknown_hint": "Check that you typed the number exactly as printed on the tag.",
        "verdict_integrity_failed": "INTEGRITY CHECK FAILED — do not rely on this history",
        "verdict_integrity_failed_detail": "The ledger's own check of this tag's signed history found problems:",
        "verdict_rmi": "RMI smelter ID {cid}",
        "status_issued": "issued, not yet on a bag",
        "status_in_custody": "in the custody of {holder}",
        "status_in_transit": "in transit from {holder} to {recipient}",
        "status_merged": "merged into lot {lot}",
        "status_split": "split into {n} tags",
        "status_consumed": "consumed at {refiner}",
        "status_voided": "voided ({reason})",
        "current_mass": "Last recorded mass: {mass}",
        # void reasons
        "reason_lost": "lost",
        "reason_stolen": "stolen",
        "reason_damaged": "damaged",
        "reason_other": "other reason",
        # why a tag was scanned (tag_scanned.purpose)
        "purpose_customs": "customs",
        "purpose_inspection": "inspection",
        "purpose_purchase": "purchase",
        "purpose_monitoring": "monitoring",
        "purpose_other": "other purpose",
        # labels (?s=)
        "label_valid": "Label signature valid",
        "label_valid_detail": "The QR label was signed by the ledger's operator for tag {tag}.",
        "label_invalid": "Label signature INVALID — possible counterfeit label",
        "label_invalid_detail": "This QR label was not signed by the operator for tag {tag}. Do not trust the "
                                "label; report it.",
        "label_unchecked": "Label signature not checked",
        "label_unchecked_detail": "This server cannot check QR label signatures.",
        "label_key_revoked": "It was signed with operator key {kid}, revoked since {date}: ask the operator whether "
                             "its labels are still honoured.",
        # flags
        "flags_title": "Warnings",
        "flag_evidence": "Evidence",
        "flag_event": "log entry #{seq}",
        "flag_rejected": "rejected attempt",
        "flag_inherited": "Inherited from the tags this one came from:",
        "flag_details": "The ledger's words:",
        "flag_row": "! Evidence for a warning",
        # origin
        "origin_title": "Origin",
        "origin_none": "No ore recorded yet.",
        "origin_site": "Mine site",
        "origin_mineral": "Mineral",
        "origin_pit": "Pit",
        "origin_date": "Tagged on",
        "origin_gps": "GPS",
        "origin_bags": "Bags",
        "origin_summary": "Ore from {n} bags, tagged at:",
        "origin_each": "Each bag ({n})",
        "origin_more": "… and {n} more (see the JSON document).",
        # minerals
        "mineral_cobalt": "cobalt",
        "mineral_copper": "copper",
        "mineral_tin": "tin",
        "mineral_tantalum": "tantalum",
        "mineral_tungsten": "tungsten",
        # risk at the origin sites (protocol 16.6)
        "risk_title": "Risk at the origin sites",
        "risk_intro": "For each mine site where this ore was tagged: the incidents recorded by field monitors that "
                      "were open at some time during the window (from the ore's tagging there to the end of the "
                      "tag's custody), and their corrective actions. Public summaries only: confidential details "
                      "are kept for authorised readers.",
        "risk_headline_none": "No red flag open at the origin sites during the window",
        "risk_headline_red_one": "{n} red flag open during the window, none still open",
        "risk_headline_red_other": "{n} red flags open during the window, none still open",
        "risk_headline_unremediated_one": "{n} red flag of the window is still open, not remediated",
        "risk_headline_unremediated_other": "{n} red flags of the window are still open, not remediated",
        "risk_count_red": "Red flags open during the window: {count}",
        "risk_count_remediated": "Remediated since: {count}",
        "risk_count_unremediated": "Still open, not remediated: {count}",
        "risk_status": "Site status now: {status}",
        "risk_status_red": "red — a red flag is open",
        "risk_status_amber": "amber — an open incident or an overdue corrective action",
        "risk_status_green": "green — no open incident, no overdue action",
        "risk_window": "Window: from {start} (tagged there) to {end}",
        "risk_window_now": "Window: from {start} (tagged there) until now",
        "risk_empty": "No incident recorded at this site during the window.",
        "risk_incident": "Incident",
        "risk_red_flag": "Red flag",
        "risk_severity": "Severity: {severity}",
        "risk_remediated": "Remediated: closed, every corrective action verified implemented",
        "risk_incident_reported": "open, not yet confirmed",
        "risk_incident_confirmed": "confirmed, open",
        "risk_incident_dismissed": "dismissed on {date}",
        "risk_incident_closed": "closed on {date}",
        "risk_occurred": "Occurred on {date}",
        "risk_reported": "reported on {date}",
        "risk_summary": "Public summary:",
        "risk_people_one": "{n} person affected",
        "risk_people_other": "{n} people affected",
        "risk_referred": "referred to {org}",
        "risk_actions": "Corrective actions:",
        "risk_no_action": "No corrective action assigned.",
        "risk_action": "{description} — {owner}, due {due}:",
        "risk_action_implemented": "implemented on {date}",
        "risk_action_cancelled": "cancelled (the incident was dismissed)",
        "risk_action_overdue": "OVERDUE",
        "risk_action_not_implemented": "verified not implemented",
        "risk_action_open": "in progress",
        "risk_action_progress": "{percent}% done by the owner's last report",
        "risk_annex_ii": "OECD Annex II: {risk} (paragraphs {paragraphs})",
        "risk_cat_child_labour": "Child labour",
        "risk_cat_child_labour_worst_forms": "Worst forms of child labour",
        "risk_cat_health_safety": "Health and safety",
        "risk_cat_forced_labour": "Forced labour",
        "risk_cat_armed_groups": "Armed groups",
        "risk_cat_security_forces": "Public or private security forces",
        "risk_cat_chain_of_custody": "Chain of custody (tag misuse, untagged ore, smuggling)",
        "risk_cat_environment": "Environment",
        "risk_cat_governance": "Governance (bribery, illegal taxes, unpaid royalties)",
        "risk_sev_low": "low",
        "risk_sev_medium": "medium",
        "risk_sev_high": "high",
        "risk_sev_critical": "critical",
        "risk_annex_serious_abuses": "serious human rights abuses",
        "risk_annex_non_state_armed_groups": "support to non-state armed groups",
        "risk_annex_security_forces": "public or private security forces",
        "risk_annex_bribery_misrepresentation": "bribery and misrepresentation of origin",
        "risk_annex_money_laundering": "money laundering",
        "risk_annex_taxes_fees_royalties": "taxes, fees and royalties due to governments",
        # relations
        "relations_title": "Lot",
        "rel_lot": "Went into lot {lot}.",
        "rel_inputs_one": "This lot was formed from 1 tag:",
        "rel_inputs_other": "This lot was formed from {n} tags:",
        "rel_parent": "Split out of {parent}.",
        "rel_outputs": "Split into:",
        # timeline
        "timeline_title": "Custody, as it happened",
        "ev_tags_issued": "Tag issued to {org}",
        "ev_tag_attached": "Put on a bag of ore at {site}",
        "ev_custody_dispatched": "Dispatched by {actor} to {to}",
        "ev_custody_received": "Received by {actor}",
        "ev_lot_formed_lot_one": "Lot formed by {actor} from 1 tag",
        "ev_lot_formed_lot_other": "Lot formed by {actor} from {n} tags",
        "ev_lot_formed_input": "Merged by {actor} into lot {lot}",
        "ev_lot_split_lot": "Split by {actor} into {n} tags",
        "ev_lot_split_output": "Split out of {parent} by {actor}",
        "ev_tag_consumed": "Consumed at {actor}",
        "ev_tag_voided": "Voided by {actor}: {reason}",
        "ev_tag_scanned": "Scanned by {actor}",
        "ev_tag_scanned_at": "Scanned by {actor} at {location}",
        "ev_tag_scanned_purpose": "Scanned by {actor} ({purpose})",
        "ev_tag_scanned_at_purpose": "Scanned by {actor} at {location} ({purpose})",
        "ev_other": "{type} by {actor}",
        "at_location": "at {location}",
        "pit": "pit: {pit}",
        "product": "product: {product}",
        "note": "note: {note}",
        # check it yourself
        "verify_title": "Check it yourself",
        "verify_intro": "Every event below was signed by the organisation that acted, with its own key, and is a "
                        "leaf of a public append-only log whose state the ledger signs (a checkpoint). You do not "
                        "have to trust this page: fetch the data and check the signatures and proofs.",
        "verify_how": "To verify everything (every signature, hash link and Merkle proof, against the log key):",
        "verify_docs": "Formats: docs/protocol.md, sections 9 to 11 (tag view, custody state, verifiable log).",
        "verify_json": "This tag as JSON (events, envelopes, keys, proofs)",
        "verify_key": "The log's public key",
        "verify_checkpoint": "The latest signed checkpoint",
        "verify_note": "Checkpoint used for the proofs below (size {size}, root {root}):",
        "verify_no_checkpoint": "No checkpoint has been signed yet; proofs will appear within a second.",
        "verify_events": "Events",
        "verify_keys": "Signing keys",
        "v_hash": "Envelope hash (SHA-256 of its canonical JSON)",
        "v_signer": "Signed by",
        "v_kid": "Key id",
        "v_sig": "Signature (Ed25519)",
        "v_index": "Log index",
        "v_received": "Received",
        "v_proof": "Inclusion proof (tree size {size})",
        "v_proof_none": "Not yet covered by the checkpoint (it will be by the next one).",
        "v_public_key": "Public key",
        "v_valid_from": "Valid from",
        "v_revoked_from": "Revoked from",
        # error pages
        "bad_title": "Not a tag number",
        "bad_detail": "{tag} is not a valid tag number: tag numbers use A–Z, 0–9 and '-', 3 to 40 characters.",
        "bad_query_title": "Invalid address",
        "bad_query": "The address has an invalid parameter: {detail}",
        "unavailable_title": "Temporarily unavailable",
        "unavailable_detail": "The ledger could not answer just now. Nothing is wrong with the tag; try again in a "
                              "minute.",
        "footer": "Public, read-only verification. No account, no tracking, no JavaScript.",
    },
    "fr": {
        "page_title": "Étiquette {tag} — vérification tagledger",
        "site_name": "tagledger · vérification de la chaîne de possession",
        "tag_label": "Étiquette de sécurité",
        "language_switch": "English",
        "check_other": "Autre numéro d'étiquette",
        "check_button": "Vérifier",
        "as_of_banner": "Vue historique\u00a0: cette étiquette telle qu'elle était après les {n} premières entrées du "
                        "journal public.",
        "as_of_current": "Voir l'état actuel",
        "verdict_in_custody": "Authentique — sous la garde de {holder}",
        "verdict_issued": "Étiquette authentique, pas encore posée sur un sac",
        "verdict_issued_detail": "Émise pour {org}. Aucun minerai n'a encore été enregistré sous cette étiquette.",
        "verdict_in_transit": "Authentique — en transit de {holder} vers {recipient}",
        "verdict_merged": "Authentique — fusionnée dans le lot {lot}",
        "verdict_merged_detail": "Le minerai de ce sac voyage désormais sous l'étiquette du lot.",
        "verdict_split": "Authentique — divisée en {n} étiquettes",
        "verdict_consumed": "Authentique — consommée chez {refiner}",
        "verdict_consumed_detail": "Le minerai a été traité dans cette fonderie/affinerie\u00a0; la vie de l'étiquette "
                                   "est terminée.",
        "verdict_voided": "ANNULÉE ({reason}) — n'acceptez pas de minerai portant cette étiquette",
        "verdict_flagged": "SIGNALÉE — à vérifier avant d'accepter",
        "verdict_flagged_detail_one": "1 alerte ci-dessous. État de la chaîne de possession\u00a0: {status}",
        "verdict_flagged_detail_other": "{n} alertes ci-dessous. État de la chaîne de possession\u00a0: {status}",
        "verdict_unknown": "ÉTIQUETTE INCONNUE — jamais émise par ce registre",
        "verdict_unknown_detail": "Aucune étiquette {tag} n'a jamais été émise. Traitez le minerai comme non "
                                  "tracé.",
        "verdict_unknown_hint": "Vérifiez que le numéro saisi est exactement celui imprimé sur l'étiquette.",
        "verdict_integrity_failed": "ÉCHEC DU CONTRÔLE D'INTÉGRITÉ — ne vous fiez pas à cet historique",
        "verdict_integrity_failed_detail": "Le contrôle de l'historique signé de cette étiquette par le registre "
                                           "a trouvé des problèmes\u00a0:",
        "verdict_rmi": "identifiant de fonderie RMI {cid}",
        "status_issued": "émise, pas encore posée sur un sac",
        "status_in_custody": "sous la garde de {holder}",
        "status_in_transit": "en transit de {holder} vers {recipient}",
        "status_merged": "fusionnée dans le lot {lot}",
        "status_split": "divisée en {n} étiquettes",
        "status_consumed": "consommée chez {refiner}",
        "status_voided": "annulée ({reason})",
        "current_mass": "Dernière masse enregistrée\u00a0: {mass}",
        "reason_lost": "perdue",
        "reason_stolen": "volée",
        "reason_damaged": "endommagée",
        "reason_other": "autre motif",
        "purpose_customs": "douane",
        "purpose_inspection": "inspection",
        "purpose_purchase": "achat",
        "purpose_monitoring": "suivi",
        "purpose_other": "autre motif",
        "label_valid": "Signature de l'étiquette QR valide",
        "label_valid_detail": "L'étiquette QR a été signée par l'opérateur du registre pour l'étiquette {tag}.",
        "label_invalid": "Signature de l'étiquette QR INVALIDE — étiquette peut-être contrefaite",
        "label_invalid_detail": "Cette étiquette QR n'a pas été signée par l'opérateur pour l'étiquette {tag}. "
                                "Ne vous y fiez pas\u00a0; signalez-la.",
        "label_unchecked": "Signature de l'étiquette QR non vérifiée",
        "label_unchecked_detail": "Ce serveur ne sait pas vérifier les signatures des étiquettes QR.",
        "label_key_revoked": "Elle a été signée avec la clé d'opérateur {kid}, révoquée depuis le {date}\u00a0: "
                             "demandez à l'opérateur si ses étiquettes sont toujours valables.",
        "flags_title": "Alertes",
        "flag_evidence": "Preuves",
        "flag_event": "entrée du journal n° {seq}",
        "flag_rejected": "tentative rejetée",
        "flag_inherited": "Héritée des étiquettes dont celle-ci est issue\u00a0:",
        "flag_details": "Selon le registre\u00a0:",
        "flag_row": "! Preuve d'une alerte",
        "origin_title": "Origine",
        "origin_none": "Aucun minerai enregistré pour l'instant.",
        "origin_site": "Site minier",
        "origin_mineral": "Minerai",
        "origin_pit": "Puits",
        "origin_date": "Étiqueté le",
        "origin_gps": "GPS",
        "origin_bags": "Sacs",
        "origin_summary": "Minerai de {n} sacs, étiquetés à\u00a0:",
        "origin_each": "Chaque sac ({n})",
        "origin_more": "… et {n} de plus (voir le document JSON).",
        "mineral_cobalt": "cobalt",
        "mineral_copper": "cuivre",
        "mineral_tin": "étain",
        "mineral_tantalum": "tantale",
        "mineral_tungsten": "tungstène",
        "risk_title": "Risques sur les sites d'origine",
        "risk_intro": "Pour chaque site minier où ce minerai a été étiqueté\u00a0: les incidents relevés par les "
                      "observateurs de terrain qui étaient ouverts à un moment de la période (de l'étiquetage du "
                      "minerai sur le site à la fin de la chaîne de possession de l'étiquette), et leurs actions "
                      "correctives. Résumés publics uniquement\u00a0: les détails confidentiels sont réservés aux "
                      "lecteurs autorisés.",
        "risk_headline_none": "Aucun signal d'alerte rouge ouvert sur les sites d'origine pendant la période",
        "risk_headline_red_one": "{n} signal d'alerte rouge ouvert pendant la période, aucun encore ouvert",
        "risk_headline_red_other": "{n} signaux d'alerte rouges ouverts pendant la période, aucun encore ouvert",
        "risk_headline_unremediated_one": "{n} signal d'alerte rouge de la période est toujours ouvert, sans "
                                          "remédiation",
        "risk_headline_unremediated_other": "{n} signaux d'alerte rouges de la période sont toujours ouverts, sans "
                                            "remédiation",
        "risk_count_red": "Signaux d'alerte rouges ouverts pendant la période\u00a0: {count}",
        "risk_count_remediated": "Remédiés depuis\u00a0: {count}",
        "risk_count_unremediated": "Toujours ouverts, sans remédiation\u00a0: {count}",
        "risk_status": "État actuel du site\u00a0: {status}",
        "risk_status_red": "rouge — un signal d'alerte rouge est ouvert",
        "risk_status_amber": "orange — un incident ouvert ou une action corrective en retard",
        "risk_status_green": "vert — aucun incident ouvert, aucune action en retard",
        "risk_window": "Période\u00a0: du {start} (étiquetage sur le site) au {end}",
        "risk_window_now": "Période\u00a0: du {start} (étiquetage sur le site) à aujourd'hui",
        "risk_empty": "Aucun incident enregistré sur ce site pendant la période.",
        "risk_incident": "Incident",
        "risk_red_flag": "Signal d'alerte rouge",
        "risk_severity": "Gravité\u00a0: {severity}",
        "risk_remediated": "Remédié\u00a0: clos, chaque action corrective vérifiée comme mise en œuvre",
        "risk_incident_reported": "ouvert, pas encore confirmé",
        "risk_incident_confirmed": "confirmé, ouvert",
        "risk_incident_dismissed": "classé sans suite le {date}",
        "risk_incident_closed": "clos le {date}",
        "risk_occurred": "Survenu le {date}",
        "risk_reported": "signalé le {date}",
        "risk_summary": "Résumé public\u00a0:",
        "risk_people_one": "{n} personne touchée",
        "risk_people_other": "{n} personnes touchées",
        "risk_referred": "confié à {org}",
        "risk_actions": "Actions correctives\u00a0:",
        "risk_no_action": "Aucune action corrective assignée.",
        "risk_action": "{description} — {owner}, échéance {due}\u00a0:",
        "risk_action_implemented": "mise en œuvre le {date}",
        "risk_action_cancelled": "annulée (l'incident a été classé sans suite)",
        "risk_action_overdue": "EN RETARD",
        "risk_action_not_implemented": "vérifiée comme non mise en œuvre",
        "risk_action_open": "en cours",
        "risk_action_progress": "{percent}\u00a0% réalisés selon le dernier rapport du responsable",
        "risk_annex_ii": "Annexe II de l'OCDE\u00a0: {risk} (paragraphes {paragraphs})",
        "risk_cat_child_labour": "Travail des enfants",
        "risk_cat_child_labour_worst_forms": "Pires formes de travail des enfants",
        "risk_cat_health_safety": "Santé et sécurité",
        "risk_cat_forced_labour": "Travail forcé",
        "risk_cat_armed_groups": "Groupes armés",
        "risk_cat_security_forces": "Forces de sécurité publiques ou privées",
        "risk_cat_chain_of_custody": "Chaîne de possession (étiquettes détournées, minerai non étiqueté, "
                                     "contrebande)",
        "risk_cat_environment": "Environnement",
        "risk_cat_governance": "Gouvernance (corruption, taxes illégales, redevances impayées)",
        "risk_sev_low": "faible",
        "risk_sev_medium": "moyenne",
        "risk_sev_high": "élevée",
        "risk_sev_critical": "critique",
        "risk_annex_serious_abuses": "atteintes graves aux droits humains",
        "risk_annex_non_state_armed_groups": "soutien à des groupes armés non étatiques",
        "risk_annex_security_forces": "forces de sécurité publiques ou privées",
        "risk_annex_bribery_misrepresentation": "corruption et fausse déclaration de l'origine",
        "risk_annex_money_laundering": "blanchiment d'argent",
        "risk_annex_taxes_fees_royalties": "taxes, droits et redevances dus aux États",
        "relations_title": "Lot",
        "rel_lot": "Fusionnée dans le lot {lot}.",
        "rel_inputs_one": "Ce lot a été formé à partir d'une étiquette\u00a0:",
        "rel_inputs_other": "Ce lot a été formé à partir de {n} étiquettes\u00a0:",
        "rel_parent": "Issue de la division de {parent}.",
        "rel_outputs": "Divisée en\u00a0:",
        "timeline_title": "Chaîne de possession, telle qu'elle s'est déroulée",
        "ev_tags_issued": "Étiquette émise pour {org}",
        "ev_tag_attached": "Posée sur un sac de minerai à {site}",
        "ev_custody_dispatched": "Expédiée par {actor} à {to}",
        "ev_custody_received": "Reçue par {actor}",
        "ev_lot_formed_lot_one": "Lot formé par {actor} à partir d'une étiquette",
        "ev_lot_formed_lot_other": "Lot formé par {actor} à partir de {n} étiquettes",
        "ev_lot_formed_input": "Fusionnée par {actor} dans le lot {lot}",
        "ev_lot_split_lot": "Divisée par {actor} en {n} étiquettes",
        "ev_lot_split_output": "Issue de la division de {parent} par {actor}",
        "ev_tag_consumed": "Consommée chez {actor}",
        "ev_tag_voided": "Annulée par {actor}\u00a0: {reason}",
        "ev_tag_scanned": "Scannée par {actor}",
        "ev_tag_scanned_at": "Scannée par {actor} à {location}",
        "ev_tag_scanned_purpose": "Scannée par {actor} ({purpose})",
        "ev_tag_scanned_at_purpose": "Scannée par {actor} à {location} ({purpose})",
        "ev_other": "{type} par {actor}",
        "at_location": "à {location}",
        "pit": "puits\u00a0: {pit}",
        "product": "produit\u00a0: {product}",
        "note": "note\u00a0: {note}",
        "verify_title": "Vérifiez vous-même",
        "verify_intro": "Chaque événement ci-dessous a été signé par l'organisation qui a agi, avec sa propre clé, "
                        "et figure dans un journal public en ajout seul dont le registre signe l'état (un point de "
                        "contrôle). Inutile de faire confiance à cette page\u00a0: récupérez les données et vérifiez "
                        "les signatures et les preuves.",
        "verify_how": "Pour tout vérifier (chaque signature, lien de hachage et preuve de Merkle, avec la clé du "
                      "journal)\u00a0:",
        "verify_docs": "Formats\u00a0: docs/protocol.md, sections 9 à 11 (vue d'une étiquette, état de possession, "
                       "journal vérifiable).",
        "verify_json": "Cette étiquette en JSON (événements, enveloppes, clés, preuves)",
        "verify_key": "La clé publique du journal",
        "verify_checkpoint": "Le dernier point de contrôle signé",
        "verify_note": "Point de contrôle utilisé pour les preuves ci-dessous (taille {size}, racine {root})\u00a0:",
        "verify_no_checkpoint": "Aucun point de contrôle n'a encore été signé\u00a0; les preuves apparaîtront dans une "
                                "seconde.",
        "verify_events": "Événements",
        "verify_keys": "Clés de signature",
        "v_hash": "Empreinte de l'enveloppe (SHA-256 de son JSON canonique)",
        "v_signer": "Signé par",
        "v_kid": "Identifiant de clé",
        "v_sig": "Signature (Ed25519)",
        "v_index": "Position dans le journal",
        "v_received": "Reçu le",
        "v_proof": "Preuve d'inclusion (taille de l'arbre {size})",
        "v_proof_none": "Pas encore couvert par le point de contrôle (il le sera par le suivant).",
        "v_public_key": "Clé publique",
        "v_valid_from": "Valide depuis",
        "v_revoked_from": "Révoquée depuis",
        "bad_title": "Ce n'est pas un numéro d'étiquette",
        "bad_detail": "{tag} n'est pas un numéro d'étiquette valide\u00a0: les numéros utilisent A–Z, 0–9 et «\u00a0-\u00a0», "
                      "de 3 à 40 caractères.",
        "bad_query_title": "Adresse invalide",
        "bad_query": "L'adresse contient un paramètre invalide\u00a0: {detail}",
        "unavailable_title": "Momentanément indisponible",
        "unavailable_detail": "Le registre n'a pas pu répondre pour l'instant. L'étiquette n'est pas en cause\u00a0; "
                              "réessayez dans une minute.",
        "footer": "Vérification publique en lecture seule. Sans compte, sans pistage, sans JavaScript.",
    },
}

# Titles of the fraud flags by code; an unknown code falls back to the flag's own `summary`.
FLAG_TITLES: dict[str, dict[str, str]] = {
    "en": {
        "tag.reuse": "Tag reuse: seen in places too far apart, or seen or used after its end",
        "mass.gain": "Mass gained along the chain beyond the tolerance",
        "lot.heavier_than_inputs": "A lot heavier than what it was made from",
        "site.over_capacity": "The site tagged more ore in a month than its declared capacity",
        "custody.revoked_key": "Custody passed through an organisation whose key was revoked",
        "time.late_record": "An event recorded more than 90 days after the date it bears",
    },
    "fr": {
        "tag.reuse": "Réutilisation d'étiquette\u00a0: vue en des lieux trop éloignés, ou vue ou utilisée après sa "
                     "fin",
        "mass.gain": "Masse en hausse le long de la chaîne au-delà de la tolérance",
        "lot.heavier_than_inputs": "Un lot plus lourd que ce dont il a été formé",
        "site.over_capacity": "Le site a étiqueté en un mois plus de minerai que sa capacité déclarée",
        "custody.revoked_key": "La chaîne de possession passe par une organisation dont la clé a été révoquée",
        "time.late_record": "Un événement enregistré plus de 90 jours après la date qu'il porte",
    },
}


def _is_one(lang: str, n: Any) -> bool:
    """CLDR plural category `one`: n == 1 in English; n in (0, 1) in French."""
    return n in (0, 1) if lang == "fr" else n == 1


class Messages:
    """`t(key, **values)` -> Markup in one language; values are escaped (a Markup value, e.g. a link, is kept)."""

    def __init__(self, lang: str):
        self.lang = lang if lang in CATALOGUE else DEFAULT
        self._table = CATALOGUE[self.lang]

    def __call__(self, key: str, **values: Any) -> Markup:
        """The message `key`; with a count `n`, its `key_one` or `key_other` form when the catalogue has them."""
        if "n" in values and f"{key}_other" in self._table:
            key += "_one" if _is_one(self.lang, values["n"]) else "_other"
        text = self._table.get(key) or CATALOGUE[DEFAULT][key]
        return Markup(escape(text)).format(**values)  # Markup.format escapes every non-Markup value

    def flag_title(self, code: str) -> str | None:
        return FLAG_TITLES[self.lang].get(code)

    def mineral(self, mineral: str | None) -> str:
        if not mineral:
            return ""
        return self._table.get(f"mineral_{mineral}", mineral)

    def reason(self, reason: str | None) -> str:
        if not reason:
            return ""
        return self._table.get(f"reason_{reason}", reason)

    def purpose(self, purpose: str | None) -> str:
        """Why a tag was scanned (`tag_scanned.purpose`), in words; an unknown value as it is."""
        if not purpose:
            return ""
        return self._table.get(f"purpose_{purpose}", purpose)

    def term(self, prefix: str, value: Any) -> str:
        """A coded value in words (`{prefix}_{value}`, e.g. `risk_cat_armed_groups`); an unknown one as it is."""
        if value is None or value == "":
            return ""
        return self._table.get(f"{prefix}_{value}", str(value))

    def mass(self, grams: int | None) -> str:
        return format_mass(grams, self.lang)


# ------------------------------------------------------------------------------------------------
# Language negotiation
# ------------------------------------------------------------------------------------------------

_RANGE = re.compile(r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([0-9.]{1,5})\s*)?$")


def negotiate(accept_language: str | None, override: str | None = None) -> str:
    """The page's language: `override` (?lang=) if it names one we have, else the best `Accept-Language` match
    (RFC 9110 12.5.4: q-values, ties keep the header's order, q=0 means "not this one"), else English.

    `fr-CD`, `fr-FR`… match French; `*` matches the default. A malformed header or range is ignored.
    """
    if override:
        primary = override.strip().lower().split("-")[0]
        if primary in LANGUAGES:
            return primary
    if not accept_language:
        return DEFAULT
    best: tuple[float, int, str] | None = None
    refused: set[str] = set()
    for position, item in enumerate(accept_language[:1000].split(",")[:50]):
        match = _RANGE.match(item)
        if not match:
            continue
        tag, q_text = match.group(1).lower(), match.group(2)
        try:
            q = 1.0 if q_text is None else float(q_text)
        except ValueError:
            continue
        if not 0.0 <= q <= 1.0:
            continue
        primary = tag.split("-")[0]
        lang = DEFAULT if primary == "*" else primary
        if lang not in LANGUAGES:
            continue
        if q == 0.0:
            if primary != "*":
                refused.add(lang)
            continue
        candidate = (q, -position, lang)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        return DEFAULT
    if best[2] in refused:  # e.g. "en;q=0, *": the wildcard must not bring back a refused language
        others = [lang for lang in LANGUAGES if lang not in refused]
        return others[0] if others else DEFAULT
    return best[2]


# ------------------------------------------------------------------------------------------------
# Formats
# ------------------------------------------------------------------------------------------------

_GROUP = {"en": ",", "fr": "\u202f"}  # French groups thousands with a narrow no-break space
_DECIMAL = {"en": ".", "fr": ","}


def format_mass(grams: int | None, lang: str) -> str:
    """Exact kilograms from integer grams: 49800 -> "49.800 kg" (en), "49,800 kg" (fr); 1234567 -> "1,234.567 kg" /
    "1 234,567 kg" (narrow no-break spaces in French)."""
    if grams is None:
        return ""
    sign = "-" if grams < 0 else ""
    kilos, rest = divmod(abs(grams), 1000)
    whole = f"{kilos:,}".replace(",", _GROUP.get(lang, ","))
    return f"{sign}{whole}{_DECIMAL.get(lang, '.')}{rest:03d}\u00a0kg"


def iso_date(moment: str | None) -> str:
    """`2026-11-23T14:05:09.123Z` -> `2026-11-23` (protocol times are UTC)."""
    if not moment:
        return ""
    return moment[:10]


def iso_minute(moment: str | None) -> str:
    """`2026-11-23T14:05:09.123Z` -> `14:05` (UTC)."""
    if not moment or len(moment) < 16:
        return ""
    return moment[11:16]

