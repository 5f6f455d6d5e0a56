"""A bundle's audit as people read it: verified first, then read from its ``audit_*`` tables;
and the printable HTML report (figures drawn as inline SVG, no script)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import audit_tables, manifest
from .database import open_readonly
from .errors import AuditError


def find_database(bundle: Path) -> Path:
    dbs = sorted(p for p in bundle.glob("*.db") if p.is_file())
    if len(dbs) != 1:
        raise AuditError(f"{bundle}: expected one .db file in the bundle, found {len(dbs)}; is it a bundle "
                         "made by `testigo build`?")
    return dbs[0]


def audit_bundle(bundle, *, pubkey=None, verify: bool = True, progress_factory: Callable | None = None) -> dict:
    """{"bundle": sha256 of SHA256SUMS, "checks", "tests", "coverage", "official", "notes",
    "histograms" (national)} of a bundle.

    Verified first (``verify.verify_bundle``: signature, every checksum) unless ``verify`` is
    False: an audit of a damaged or altered copy would be worse than none."""
    root = Path(bundle)
    if verify:
        from .verify import verify_bundle
        rep = verify_bundle(root, pubkey, progress_factory=progress_factory)
        if not rep.ok:
            raise AuditError(f"{root} does not verify ({len(rep.problems)} problem(s), e.g. {rep.problems[0]}); "
                             "run `testigo verify` to see them, and audit only a bundle that verifies")
    sums = root / manifest.MANIFEST
    if not sums.is_file():
        raise AuditError(f"{root} has no {manifest.MANIFEST}: not a bundle made by `testigo build`")
    conn = open_readonly(find_database(root))
    try:
        if not audit_tables.has_audit(conn):
            raise AuditError(f"{root} was built before testigo computed the audit (no audit_* tables); "
                             "rebuild it with this version (`testigo build`)")
        result = audit_tables.read_audit(conn)
        result["notes"] = {n["id"]: n for n in audit_tables.dicts(conn, "SELECT * FROM audit_notes")}
        result["histograms"] = audit_tables.dicts(conn, "SELECT view, x, y, mesas FROM audit_histograms "
                                                         "WHERE scope = 'national' ORDER BY rowid")
    finally:
        conn.close()
    return {"bundle": manifest.sha256_file(sums), **result}


def write_html(result: dict, out, lang: str = "es") -> Path:
    from .audit_html import render_report
    out = Path(out)
    out.write_text(render_report(result, lang), encoding="utf-8")
    return out
