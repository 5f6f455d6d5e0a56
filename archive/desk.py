"""What the coordinator's desk shows: the review queue, each photo's entries side by side with
their differences, the volunteers (counts, agreement, known-answer score), progress per hour.

Read-only views of the workdir; the decisions themselves are in ``archive.consensus``.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from . import consensus, known_answers
from .transcription import photos
from .transcription_form import entry_values

REVIEW_STATES = ("review", "unresolved", "waiting")


def review_queue(db) -> list[dict]:
    """Photos that need the coordinator first (no agreement after several entries, then entries
    that differ), then those waiting; decided photos are reachable from the volunteers' entries."""
    order = {s: i for i, s in enumerate(REVIEW_STATES)}
    todo = [p for p in photos(db) if p.state in order]
    todo.sort(key=lambda p: (order[p.state] if p.state != "unresolved" else -1, p.first_input))
    return [{"sha256": p.sha256, "state": p.state, "entries": p.entries} for p in todo]


def entries(db, sha: str, fields: list[str]) -> list[dict]:
    """Every entry of a photo (voided and late ones too, marked), with the fields of the form (the
    party lines and summary, and each candidate's computed total; an entry made before the paper
    form has the totals only) and ``differs``: the fields where it is not the value most entries gave."""
    voided = {r[0]: r[1] for r in db.execute(
        "SELECT v.entry_id, v.reason FROM voided_entries v JOIN transcription_entries e ON e.id = v.entry_id "
        "WHERE e.image_sha256 = ?", (sha,))}
    rows = []
    for r in db.execute("SELECT e.*, v.name, v.alias FROM transcription_entries e JOIN volunteers v "
                        "ON v.id = e.volunteer_id WHERE e.image_sha256 = ? ORDER BY e.id", (sha,)):
        values = {} if r["illegible"] else entry_values(r)
        rows.append({"id": r["id"], "volunteer_id": r["volunteer_id"], "name": r["name"], "alias": r["alias"],
                     "at": r["entered_at"], "illegible": bool(r["illegible"]), "value": r["value"],
                     "values": values, "late": bool(r["after_decision"]), "voided": voided.get(r["id"])})
    live = [e for e in rows if not e["voided"] and not e["late"] and not e["illegible"]]
    common = {f: Counter(e["values"].get(f) for e in live).most_common(1)[0][0] if live else None for f in fields}
    for e in rows:
        e["differs"] = [] if e["illegible"] else [f for f in fields if e["values"].get(f) != common[f]]
    return rows


def decision(db, sha: str) -> dict | None:
    row = db.execute("SELECT * FROM transcription_decisions WHERE image_sha256 = ?", (sha,)).fetchone()
    return dict(row) if row else None


def volunteers(db) -> list[dict]:
    """Each volunteer: entries, how many were on decided photos and agreed, known-answer score,
    and whether they are invited, revoked or set aside."""
    out = []
    agreed = dict(db.execute(
        "SELECT e.volunteer_id, count(*) FROM transcription_entries e JOIN transcription_decisions d "
        "ON d.image_sha256 = e.image_sha256 AND d.value = e.value GROUP BY e.volunteer_id").fetchall())
    judged = dict(db.execute(
        "SELECT e.volunteer_id, count(*) FROM transcription_entries e JOIN transcription_decisions d "
        "ON d.image_sha256 = e.image_sha256 WHERE d.value IS NOT NULL GROUP BY e.volunteer_id").fetchall())
    for r in db.execute(
            "SELECT v.id, v.name, v.alias, i.volunteer_id IS NOT NULL AS invited, i.revoked_at, s.reason AS set_aside, "
            "(SELECT count(*) FROM transcription_entries e WHERE e.volunteer_id = v.id) AS entries, "
            "(SELECT max(entered_at) FROM transcription_entries e WHERE e.volunteer_id = v.id) AS last "
            "FROM volunteers v LEFT JOIN invitations i ON i.volunteer_id = v.id "
            "LEFT JOIN volunteers_set_aside s ON s.volunteer_id = v.id ORDER BY v.id"):
        right, known = known_answers.score(db, r["id"])
        n = judged.get(r["id"], 0)
        out.append({**dict(r), "agreed": agreed.get(r["id"], 0), "judged": n,
                    "agreement": round(agreed.get(r["id"], 0) / n, 2) if n else None,
                    "known_right": right, "known": known, "score": round(right / known, 2) if known else None})
    return out


def progress(db, hours: int = 12, now: datetime | None = None) -> dict:
    """Entries and decisions in each of the last ``hours`` hours, and what remains at that pace."""
    now = now or datetime.now(timezone.utc)
    start = (now - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    slots = [(start + timedelta(hours=i)).strftime("%Y-%m-%dT%H") for i in range(hours)]

    def per_hour(sql):
        got = dict(db.execute(sql, (start.isoformat(timespec="seconds"),)).fetchall())
        return [got.get(s, 0) for s in slots]
    entries_h = per_hour("SELECT substr(entered_at, 1, 13), count(*) FROM transcription_entries "
                         "WHERE entered_at >= ? GROUP BY 1")
    decided_h = per_hour("SELECT substr(decided_at, 1, 13), count(*) FROM transcription_decisions "
                         "WHERE decided_at >= ? GROUP BY 1")
    states = Counter(p.state for p in photos(db))
    remaining = states["open"] + states["waiting"] + states["review"]
    recent = sum(decided_h[-3:]) / 3
    return {"hours": [{"hour": s[11:13] + ":00", "entries": e, "decided": d}
                      for s, e, d in zip(slots, entries_h, decided_h)],
            "remaining": remaining, "unresolved": states["unresolved"], "rule": consensus.rule(db).name,
            "per_hour": round(recent, 1), "hours_left": round(remaining / recent, 1) if recent else None}
