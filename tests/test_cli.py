"""The command line over real files: decode's JSON lines, demo end to end (without serving)."""
import json
import sqlite3

from click.testing import CliRunner

from publish.cli import cli
from test_ingest import KNOWN, jpeg_of, qr_png


def test_decode_prints_one_json_line_per_file(tmp_path):
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_of(qr_png(KNOWN)))
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    result = CliRunner().invoke(cli, ["decode", "--json", str(good), str(junk)])
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [l["file"] for l in lines] == [str(good), str(junk)]
    assert lines[0]["status"] == "ok" and lines[0]["qr_text"] == KNOWN and lines[0]["reason"] is None
    assert lines[1]["status"] == "invalid" and lines[1]["qr_text"] is None and "JPEG" in lines[1]["reason"]
    assert result.exit_code == 2  # not every file decoded


def test_ingest_cli_reports_outcomes_and_rerun_is_noop(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.png").write_bytes(qr_png(KNOWN))
    (src / "b.txt").write_text("hello")
    runner = CliRunner()
    first = runner.invoke(cli, ["ingest", str(src), "-w", str(tmp_path / "w"), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output.splitlines()[-1])["new"] == {"decoded": 1, "rejected-file": 1}
    again = runner.invoke(cli, ["ingest", str(src), "-w", str(tmp_path / "w"), "--json"])
    assert json.loads(again.output.splitlines()[-1]) ["new"] == {}
    missing = runner.invoke(cli, ["ingest", "-w", str(tmp_path / "w")])
    assert missing.exit_code == 2 and "name at least one" in missing.output


def test_demo_builds_a_verified_bundle_from_the_shipped_sample(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "d"), "--no-serve"])
    assert result.exit_code == 0, result.output
    assert "ok: signature, checksums and database" in result.output
    bundle = tmp_path / "d" / "bundle"
    db = sqlite3.connect(bundle / "ve-2024.db")
    totals = dict(db.execute("SELECT candidate, votes FROM totals_nacional").fetchall())
    assert totals["EG"] == 7156462 and totals["NM"] == 3241461
    # every shipped sample rendering was decoded and is published, stripped, in the bundle
    import csv
    from archive import election
    sample = election.load().folder / "sample"
    truth = list(csv.DictReader(open(sample / "MANIFEST.csv", encoding="utf-8")))
    assert truth, "the sample manifest is empty"
    qr = db.execute("SELECT count(*) FROM actas WHERE source = 'qr'").fetchone()[0]
    assert qr == len(truth)
    payloads = {r[0] for r in db.execute("SELECT payload FROM actas WHERE source = 'qr'")}
    assert payloads == {row["payload"] for row in truth}
    assert db.execute("SELECT count(*) FROM images").fetchone()[0] == len(truth)
    # the sample's QR readings agree with the transcribed sheet, mesa by mesa
    checks = [r[0] for r in db.execute("SELECT crosscheck FROM actas WHERE source = 'qr'")]
    assert checks == ["agree"] * len(truth)
    # the torrents were written beside the bundle and the magnet links printed
    assert (bundle.parent / "bundle.torrent").is_file() and (bundle.parent / "bundle.v1.torrent").is_file()
    assert result.output.count("magnet:?") == 2
    # running it again decodes nothing and gives the same bundle
    sums = (bundle / "SHA256SUMS").read_bytes()
    again = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "d"), "--no-serve"])
    assert again.exit_code == 0 and "new: nothing" in again.output
    assert (bundle / "SHA256SUMS").read_bytes() == sums


def test_ingest_files_from_a_list(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(qr_png(KNOWN))
    b.write_bytes(qr_png(KNOWN.replace("!140,", "!139,")))
    listing = tmp_path / "list.txt"
    listing.write_text(f"# photos from the first volunteer\n{a}\n\n{b}\n")
    result = CliRunner().invoke(cli, ["ingest", "--files-from", str(listing), "-w", str(tmp_path / "w"),
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[-1])["new"] == {"conflict": 2}
    missing = CliRunner().invoke(cli, ["ingest", str(tmp_path / "nope"), "-w", str(tmp_path / "w")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
