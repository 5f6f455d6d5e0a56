"""`testigo audit`: print a bundle's audit (a thin click command over ``audit_report``)."""
from __future__ import annotations

import json

import click

from .bundle_cli import _errors_to_click
from .cli import CONTEXT, progress_bar

SHOWN = 12   # mesas printed per check in the text output (--json lists them all)


def _p(p) -> str:
    return "—" if p is None else f"{p:.3g}"


@click.command("audit", context_settings=CONTEXT)
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: the bundle, every check "
              "(with all its mesas) and every test.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False),
              help="Also write a self-contained report (figures inline, no script, prints on paper) to this file.")
@click.option("--lang", type=click.Choice(["es", "en"]), default="es", show_default=True,
              help="Language of the --html report.")
@click.option("--pubkey", "-p", help="The publisher's public key (.pub file or base64), obtained independently "
                                     "of the bundle. Without it the bundle's own key is used (integrity only).")
@click.option("--no-verify", is_flag=True, help="Skip verifying the bundle first (a bundle you built yourself).")
@_errors_to_click
def audit(bundle, as_json, html_out, lang, pubkey, no_verify):
    """Print the audit of BUNDLE: every consistency check and forensic test with its figure.

    \b
    The audit is computed once when the bundle is built (its audit_* tables); this reads it
    from the bundle, never from a workdir, after verifying the bundle like `testigo verify`
    (signature and every checksum: --no-verify skips that). A check lists mesas to look at;
    a test's flag (p < 0.001) is a reason to look, never a proof. The same figures are on the
    site's /auditoria page.
      testigo audit B
      testigo audit B --json > audit.json
      testigo audit B --html informe.html --lang es
    """
    from .audit_report import audit_bundle, write_html

    result = audit_bundle(bundle, pubkey=pubkey, verify=not no_verify,
                          progress_factory=None if as_json else progress_bar("verifying the bundle"))
    if html_out:
        write_html(result, html_out, lang=lang)
    if as_json:
        click.echo(json.dumps({k: result[k] for k in ("bundle", "checks", "tests", "coverage", "official")},
                              ensure_ascii=False, indent=1))
        return
    click.echo(f"audit of {bundle} (SHA256SUMS {result['bundle']})")
    click.echo("\nconsistency checks (mesas):")
    for c in result["checks"]:
        more = f" … and {c['count'] - SHOWN:,} more (--json lists all)" if c["count"] > SHOWN else ""
        mesas = f": {', '.join(c['mesas'][:SHOWN])}{more}" if c["mesas"] else ""
        click.echo(f"  {c['id']:<20} {c['count']:>7,}  {c['title']}{mesas}")
        for f in c.get("fields") or ():
            click.echo(f"  {'':<20} {f['mesas']:>7,}    {f['field']} differs ({f['sources']})")
    nat = result["coverage"][0]
    click.echo(f"\ncoverage: {nat['mesas_counted']:,} of {nat['mesas_published'] or nat['mesas_registry']:,} mesas "
               f"counted, {nat['electores_counted']:,} electors")
    click.echo("\ntests (n, statistic, p-value, FLAG when p < 0.001):")
    for t in result["tests"]:
        stat = "—" if t["statistic"] is None else f"{t['statistic']:.4g}"
        click.echo(f"  {t['id']:<13} {t['scope']:<11} {t['candidate']:<5} n={t['n']:<6,} {stat:>9}  "
                   f"p={_p(t['p_value']):<9} {'FLAG' if t['flag'] else ''}")
    for b in result["official"]:
        r = b["reach"]
        click.echo(f"\nofficial {b['bulletin']} ({b['read_text']}): " + ", ".join(
            f"{c['candidate']} {c['announced']:,} announced / {c['archived']:,} archived" for c in b["candidates"]))
        if r:
            click.echo(f"  remaining electors {r['electores_remaining']:,}: {r['first']} - {r['second']} could reach "
                       f"at most {r['margin_reachable_max']:,}, announced {r['margin_announced']:,} -> "
                       f"{'reachable' if r['reachable'] else 'NOT reachable'}"
                       + (f"; archived already above the announced: {', '.join(r['exceeded'])}" if r["exceeded"] else ""))
    if html_out:
        click.echo(f"\nreport written to {html_out}")
