"""The servers' logs of a whole demo run hold no data value, weight or key."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

from tests.conftest import unseen
from unseen.engine.data import synth

ROOT = Path(__file__).resolve().parents[2]


def test_demo_logs_are_json_and_hold_no_values_weights_or_keys(tmp_path):
    env = dict(os.environ, UNSEEN_LOG_LEVEL="INFO", UNSEEN_LOG_JSON="1")
    done = unseen("demo", "--enterprises", "3000", "--workdir", tmp_path, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [
        line
        for p in (tmp_path / "logs").glob("*.log")
        for line in p.read_text().splitlines()
        if line.strip()
    ]
    assert len(lines) > 50  # INFO lines from every holder and the coordinator
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {e["level"] for e in entries} <= {"INFO", "WARNING"}
    # Every field but the timestamp and process id, whose digits can match a short number by
    # chance (a time of 23:47:19.278 "holds" the amount 19.27).
    stamps = ("time", "process")
    text = "\n".join(
        json.dumps({k: v for k, v in e.items() if k not in stamps}, ensure_ascii=False)
        for e in entries
    )
    # Data values: cities, industries, entity ids, amounts from every holder's tables.
    spec = synth.SynthSpec(seed=7, enterprises=3000)
    con = duckdb.connect()
    values = set(synth.CITIES) | set(synth.INDUSTRIES)
    for holder in ("grid-east", "samr", "bank-a", "telecom"):
        for table in (tmp_path / holder).glob("*.parquet"):
            rows = con.sql(f"SELECT * FROM read_parquet('{table}') LIMIT 50").fetchall()
            values |= {str(v) for row in rows for v in row if v is not None and len(str(v)) > 4}
    values |= {str(a) for a in synth.suspicious_accounts(spec)}
    leaked = sorted(v for v in values if v in text)
    assert not leaked, leaked[:10]
    # Weights of the shipped models, as the JSON writes them and in short forms.
    for name in ("credit.json", "fraud.json"):
        for feature in json.loads((ROOT / "unseen" / "models" / name).read_text())["features"]:
            weight = feature["weight"]
            for form in (repr(weight), f"{weight:.6g}", f"{weight:.4e}"):
                assert form not in text, (name, form)
    # Key material: no PEM blocks, no private key files' contents.
    assert "BEGIN" not in text and "PRIVATE" not in text
    for key_file in tmp_path.glob("*/holder.key"):
        body = "".join(key_file.read_text().splitlines()[1:-1])
        assert body[:24] not in text
