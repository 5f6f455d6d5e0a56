"""Two ingests on one workdir (issue 21, item 3): temporary files are per process and swept only
when their writer is dead; the same inputs ingested twice at once both succeed, each input is
recorded once, and each run's summary counts only what it recorded itself."""
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from archive.workdir import Workdir, sweep_temporaries

TESTIGO = str(Path(sys.executable).with_name("testigo"))


def test_two_ingests_of_the_same_inputs_at_once(tmp_path, photo_factory, payload_for, csv_rows):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rows = csv_rows[100:124]
    for i, row in enumerate(rows):
        (inbox / f"acta_{i:02d}.jpg").write_bytes(photo_factory(payload_for(row), seed=i))
    (inbox / "notas.txt").write_text("no es una foto\n")
    wd = tmp_path / "wd"
    Workdir(wd).close()
    runs = [subprocess.Popen([TESTIGO, "ingest", str(inbox), "--workdir", str(wd), "-j", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in runs]
    for p, (out, err) in zip(runs, outs):
        assert p.returncode == 0 and "Traceback" not in err, (out, err)
    db = sqlite3.connect(wd / "state.db")
    locators = [r[0] for r in db.execute("SELECT locator FROM inputs")]
    assert len(locators) == len(set(locators)) == len(rows) + 1            # each input recorded once
    assert db.execute("SELECT count(*) FROM actas").fetchone()[0] == len(rows)
    # each summary counts its own inputs only: together, every input exactly once
    new = [int(re.search(r"^(\d+) new inputs, (\d+) already", out, re.M).group(1)) for out, _ in outs]
    skipped = [int(re.search(r"^(\d+) new inputs, (\d+) already", out, re.M).group(2)) for out, _ in outs]
    assert sum(new) == len(rows) + 1, outs
    assert [n + s for n, s in zip(new, skipped)] == [len(rows) + 1] * 2, outs
    assert not list((wd / "objects").glob("*/*.tmp*"))


def test_a_temporary_file_is_swept_only_when_its_writer_is_dead(tmp_path):
    wd = tmp_path / "wd"
    Workdir(wd).close()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        folder = wd / "objects" / "ab"
        folder.mkdir()
        writing = folder / f"{'ab' * 32}.tmp{live.pid}"
        killed = folder / f"{'ab' * 32}.tmp{dead.pid}"
        odd = folder / f"{'ab' * 32}.tmpXYZ"
        for p in (writing, killed, odd):
            p.write_bytes(b"half a photo")
        Workdir(wd).close()                     # opening the workdir sweeps
        assert writing.exists() and not killed.exists() and not odd.exists()
        live.kill()
        live.wait()
        assert sweep_temporaries(wd / "objects") == 1 and not writing.exists()
    finally:
        live.kill()
        live.wait()
