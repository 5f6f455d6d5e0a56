"""Clean after a crash (issue 21, item 7): a build or mirror killed with -9 leaves no worker behind,
the next run sweeps its hidden folders, and a crash in the swap never leaves OUT absent for good."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from archive import staging
from archive.workdir import pid_alive

TESTIGO = str(Path(sys.executable).with_name("testigo"))


def children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parent_of = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parent_of[int(d.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent_of.items() if pp == p]
        found.update(kids)
        todo.extend(kids)
    return found


def wait_for(condition, seconds: float, step: float = 0.01):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return None


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def kill_when(proc, ready, seconds=120):
    """kill -9 ``proc`` once ``ready()`` holds; returns its descendants at that moment."""
    kids = wait_for(lambda: ready() and children(proc.pid), seconds)
    assert kids, "the run finished or never started its workers"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return kids


def test_a_killed_mirror_leaves_no_worker_and_its_folder_is_swept(bundle, tmp_path):
    out = tmp_path / "M"
    first = subprocess.Popen([TESTIGO, "mirror", str(bundle), "-o", str(out), "-j", "2"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hidden = out.with_name(f".M.mirroring-{first.pid}")
    kids = kill_when(first, lambda: hidden.exists() and len(children(first.pid)) >= 3)  # 2 workers + tracker
    assert wait_for(lambda: not any(pid_alive(k) for k in kids), 10), "workers outlived a killed mirror"
    assert hidden.exists()                                  # what the killed run left...
    second = subprocess.Popen([TESTIGO, "mirror", str(bundle), "-o", str(out), "-j", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: out.with_name(f".M.mirroring-{second.pid}").exists(), 60, 0.05)
        assert not hidden.exists()                          # ...the next run swept
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait()


def test_a_killed_build_leaves_no_child_and_the_next_build_sweeps(photo_workdir, copy_tree, tmp_path):
    wd = copy_tree(photo_workdir.path)
    out = tmp_path / "B"
    assert subprocess.run([TESTIGO, "build", "-w", str(wd), "-o", str(out)], capture_output=True).returncode == 0
    before = sorted(p.name for p in out.iterdir())
    for attempt in range(5):     # kill it while its shard writer runs (a moment on a small workdir)
        import shutil
        shutil.rmtree(wd / "published", ignore_errors=True)
        proc = subprocess.Popen([TESTIGO, "build", "-w", str(wd), "-o", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        hidden = out.with_name(f".B.building-{proc.pid}")
        kids = wait_for(lambda: hidden.exists() and children(proc.pid), 60, 0.005)
        if kids:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        proc.wait()
    assert kids, "never caught the build with a child process"
    assert wait_for(lambda: not any(pid_alive(k) for k in kids), 10), "a child outlived a killed build"
    assert hidden.exists() and sorted(p.name for p in out.iterdir()) == before    # OUT untouched
    r = subprocess.run([TESTIGO, "build", "-w", str(wd), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not staging.leftovers(out), staging.leftovers(out)


def test_a_crash_between_the_renames_is_repaired_by_the_next_run(tmp_path):
    out = tmp_path / "B"
    pid = dead_pid()
    old = out.with_name(f".B.old-{pid}")            # the previous bundle, hidden by the first rename
    old.mkdir()
    (old / "SHA256SUMS").write_text("previous\n")
    new = out.with_name(f".B.building-{pid}")       # the new one, never renamed into place
    new.mkdir()
    (new / "SHA256SUMS").write_text("half\n")
    done = staging.sweep(out)
    assert (out / "SHA256SUMS").read_text() == "previous\n" and not old.exists() and not new.exists(), done
    assert any("put back" in d for d in done)
    # a live run's folder is never touched
    live = out.with_name(f".B.building-{os.getpid() + 0}")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        theirs = out.with_name(f".B.building-{other.pid}")
        theirs.mkdir()
        staging.sweep(out)
        assert theirs.exists()
    finally:
        other.kill()
        other.wait()
    assert not live.exists()


def test_the_swap_keeps_out_present(tmp_path):
    out = tmp_path / "B"
    out.mkdir()
    (out / "a").write_text("old")
    with staging.staged_folder(out, "building") as s:
        (s / "b").write_text("new")
        assert staging.exchange(s, out) and (out / "b").exists()      # the kernel swaps atomically here
        assert staging.exchange(s, out) and (out / "a").exists()      # and back
    assert sorted(p.name for p in out.iterdir()) == ["b"] and not staging.leftovers(out)
