"""A jointly trained model's lineage: each holder's signed statement over its weights.

At the end of a job every holder that keeps a ledger signs, with its ledger key,
what it trained: the job, its weight digest (SHA-256 of the weights, which never
leave it), the iterations and the number of entities, and the ids of the
vouchers that authorised it. The bank puts the statements in the model file;
a supervisor checks them with ``unseen audit lineage`` against the holders'
public keys, and can match the job's ``train`` entries in the holders' ledgers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from unseen.engine.errors import SignatureError
from unseen.engine.governance.signing import PublicKey, SigningKey, canonical_json

__all__ = ["sign_statement", "verify_lineage"]

_TAG = b"unseen.lineage.v1\n"
_FIELDS = ("job", "holder", "weights_sha256", "iterations", "entities", "vouchers")


def _signed_bytes(statement: Mapping[str, Any]) -> bytes:
    return _TAG + canonical_json({k: statement[k] for k in _FIELDS})


def sign_statement(
    key: SigningKey,
    job: str,
    holder: str,
    weights_sha256: str,
    iterations: int,
    entities: int,
    vouchers: Sequence[str],
) -> str:
    """A holder's signed statement (JSON text) about the weights it keeps."""
    statement: dict[str, Any] = {
        "job": job,
        "holder": holder,
        "weights_sha256": weights_sha256,
        "iterations": iterations,
        "entities": entities,
        "vouchers": sorted(vouchers),
    }
    statement["key_id"] = key.key_id
    statement["signature"] = base64.b64encode(key.sign(_signed_bytes(statement))).decode()
    return json.dumps(statement, sort_keys=True)


def verify_lineage(model: Mapping[str, Any], keys: Mapping[str, PublicKey]) -> list[str]:
    """Problems with a model file's lineage (empty: every holder's statement verifies).

    Each holder of the model must have a statement signed by its key, for this
    job, naming the weight digest the model file records.
    """
    problems: list[str] = []
    statements = {s.get("holder"): s for s in model.get("lineage", {}).get("statements", [])}
    for part in model.get("holders", []):
        name = part.get("holder", "")
        statement = statements.get(name)
        if statement is None:
            problems.append(f"{name}: no signed statement")
            continue
        key = keys.get(name)
        if key is None:
            problems.append(f"{name}: no public key given for this holder")
            continue
        try:
            signature = base64.b64decode(statement.get("signature", ""), validate=True)
            key.verify(signature, _signed_bytes(statement), f"{name}'s lineage signature")
        except (SignatureError, ValueError, KeyError) as exc:
            problems.append(f"{name}: {exc}")
            continue
        if statement["job"] != model.get("job"):
            problems.append(f"{name}: the statement is for another job")
        if statement["weights_sha256"] != part.get("weights_sha256"):
            problems.append(f"{name}: the weight digest differs from the model file's")
        if statement["iterations"] != model.get("lineage", {}).get("iterations"):
            problems.append(f"{name}: the iteration count differs from the model file's")
    return problems
