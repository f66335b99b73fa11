"""Output directories: a user's files are never replaced, and every failure to write is one line, exit 2."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from einsum import outdir
from einarray.cli import main
from einsum.outdir import MANIFEST

TINY = "workload: {cascade: gemm, ranks: {M: 16, N: 16, K: 16}}\narch: systolic-16x16\n"
RUN_FILES = {"report.json", "report.md", "report.html", "layers.csv"}  # at least these (--no-plots)
COMPARE_FILES = {"compare.json", "compare.md", "compare.png"}


def written(d: Path, kind: str, core: set[str]) -> set[str]:
    """The files einarray wrote into ``d`` by its manifest; checks ``kind`` and that ``core`` are among them."""
    m = json.loads((d / MANIFEST).read_text())
    assert m["kind"] == kind and core <= set(m["files"]) and m["files"] == sorted(m["files"]), m
    return set(m["files"])


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "cfg" / "tiny.yaml"
    p.parent.mkdir()
    p.write_text(TINY)
    (p.parent / "sweep.yaml").write_text(
        f"sweep:\n  version: 1\n  name: t\n  base: {p.name}\n  grid:\n    workload.ranks.M: [16]\n")
    return p


def run_argv(cfg: Path, out: str | Path, *extra: str) -> list[str]:
    return ["run", str(cfg), "-o", str(out), "--no-plots", "--no-progress", *extra]


def compare_argv(cfg: Path, out: str | Path, *extra: str) -> list[str]:
    return ["compare", str(cfg), "-o", str(out), "--no-progress", *extra]


def sweep_argv(cfg: Path, out: str | Path, *extra: str) -> list[str]:
    return ["sweep", str(cfg.parent / "sweep.yaml"), "-o", str(out), "-j", "1", "--no-progress", *extra]


def search_argv(cfg: Path, out: str | Path, *extra: str) -> list[str]:
    return ["search", str(cfg), "--budget", "3", "-o", str(out), "--no-progress", *extra]


COMMANDS = {"run": run_argv, "compare": compare_argv, "sweep": sweep_argv, "search": search_argv}


def snapshot(d: Path) -> dict[str, bytes | None]:
    """Every entry under ``d`` (hidden ones too) with its bytes; None for a directory."""
    return {str(p.relative_to(d)): (None if p.is_dir() else p.read_bytes()) for p in sorted(d.rglob("*"))}


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"einarray {command}: error: "), err
    assert "Traceback" not in err
    return err.strip()


def thesis(tmp_path: Path) -> Path:
    d = tmp_path / "thesis"
    d.mkdir()
    (d / "thesis.tex").write_text("\\documentclass{article}\n")
    (d / "figs").mkdir()
    (d / "figs" / "a.pdf").write_bytes(b"%PDF-1.4")
    return d


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("force", [False, True])
def test_a_users_folder_is_refused_and_untouched(tmp_path, cfg, capsys, command, force):
    d = thesis(tmp_path)
    before = snapshot(tmp_path)
    argv = COMMANDS[command](cfg, d, *(["--force"] if force and command != "sweep" else []))
    assert main(argv) == 2
    err = one_error_line(capsys, command)
    assert f"{d}: exists and is not an einarray output directory (it has no valid {MANIFEST})" in err
    if force and command != "sweep":
        assert "--force replaces only einarray output directories" in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_regular_file_is_refused_and_untouched(tmp_path, cfg, capsys, command):
    f = tmp_path / "afile"
    f.write_bytes(b"precious\n")
    before = snapshot(tmp_path)
    assert main(COMMANDS[command](cfg, f)) == 2
    assert one_error_line(capsys, command).endswith(f"{f}: is a file; give a new or empty directory for the output")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", list(COMMANDS))
def test_home_like_directory_is_refused(tmp_path, cfg, capsys, command, monkeypatch):
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".bashrc").write_text("export X=1\n")
    monkeypatch.setenv("HOME", str(home))
    before = snapshot(tmp_path)
    assert main(COMMANDS[command](cfg, os.path.expanduser("~"))) == 2
    assert "is not an einarray output directory" in one_error_line(capsys, command)
    assert snapshot(tmp_path) == before


def test_new_and_empty_directories_are_used_and_marked(tmp_path, cfg, capsys):
    out = tmp_path / "a" / "b" / "r"  # parents are created
    assert main(run_argv(cfg, out)) == 0
    m = json.loads((out / MANIFEST).read_text())
    assert m["einarray"] and not {f for f in written(out, "run", RUN_FILES) if f.endswith(".png")}
    assert m["command"].startswith("einarray run ") and m["command"].endswith("--no-plots --no-progress")
    assert {p.name for p in out.iterdir()} == written(out, "run", RUN_FILES) | {MANIFEST}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(compare_argv(cfg, empty)) == 0
    assert {p.name for p in empty.iterdir()} == written(empty, "compare", COMPARE_FILES) | {MANIFEST}
    assert {p.name for p in tmp_path.iterdir()} == {"cfg", "a", "empty"}


@pytest.mark.parametrize("command", ["run", "compare", "search"])
def test_running_again_refreshes_its_own_output(tmp_path, cfg, capsys, command):
    """The same command into its own earlier output replaces it (the README's main command can
    be run twice); a file the user added there survives."""
    out = tmp_path / "out"
    assert main(COMMANDS[command](cfg, out)) == 0
    (out / "notes.txt").write_text("mine\n")
    capsys.readouterr()
    assert main(COMMANDS[command](cfg, out)) == 0
    assert (out / "notes.txt").read_text() == "mine\n"
    assert read_kind(out) == command


@pytest.mark.parametrize("first, then", [("run", "compare"), ("compare", "run"), ("search", "run")])
def test_another_kind_of_einarray_output_needs_force(tmp_path, cfg, capsys, first, then):
    out = tmp_path / "out"
    assert main(COMMANDS[first](cfg, out)) == 0
    capsys.readouterr()
    before = snapshot(tmp_path)
    assert main(COMMANDS[then](cfg, out)) == 2
    err = one_error_line(capsys, then)
    assert f"{out}: holds einarray output written by `einarray {first} " in err
    assert err.endswith(f"not einarray {then} output; pass --force to replace it")
    assert snapshot(tmp_path) == before
    assert main(COMMANDS[then](cfg, out, "--force")) == 0


def read_kind(d):
    return json.loads((d / MANIFEST).read_text())["kind"]


def test_force_replaces_an_einarray_report_and_keeps_the_users_files(tmp_path, cfg, capsys):
    out = tmp_path / "out"
    assert main(compare_argv(cfg, out)) == 0
    old = written(out, "compare", COMPARE_FILES)
    (out / "notes.txt").write_text("mine\n")  # a file the user added to the report directory
    assert main(run_argv(cfg, out, "--force")) == 0
    # the compare files einarray wrote are gone, the run's are there, the user's file is kept
    new = written(out, "run", RUN_FILES)
    assert {p.name for p in out.iterdir()} == new | {MANIFEST, "notes.txt"} and not old & new
    assert (out / "notes.txt").read_text() == "mine\n"
    assert {p.name for p in tmp_path.iterdir()} == {"cfg", "out"}  # no temporaries beside it


def test_force_never_overwrites_a_users_file_with_an_einarray_name(tmp_path, cfg, capsys):
    out = tmp_path / "out"
    assert main(compare_argv(cfg, out)) == 0
    (out / "report.md").write_text("my own report\n")  # not in the manifest: the user's
    before = snapshot(tmp_path)
    assert main(run_argv(cfg, out, "--force")) == 2
    assert one_error_line(capsys, "run").endswith(
        f"{out / 'report.md'}: exists and was not written by einarray; not replaced")
    assert snapshot(tmp_path) == before


def test_manifest_naming_paths_outside_the_directory_is_not_ours(tmp_path, cfg, capsys):
    out = tmp_path / "out"
    assert main(run_argv(cfg, out)) == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    m = json.loads((out / MANIFEST).read_text())
    m["files"].append("../victim.txt")
    (out / MANIFEST).write_text(json.dumps(m))
    assert outdir.read_manifest(out) is None
    assert main(run_argv(cfg, out, "--force")) == 2
    assert "is not an einarray output directory" in one_error_line(capsys, "run")
    assert victim.read_text() == "keep\n" and (out / "report.json").exists()


def test_dot_in_an_empty_directory_and_in_a_report(tmp_path, cfg, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(run_argv(cfg, ".")) == 0
    assert {p.name for p in work.iterdir()} == written(work, "run", RUN_FILES) | {MANIFEST}
    capsys.readouterr()
    assert main(run_argv(cfg, ".")) == 0  # its own report: refreshed
    assert main(compare_argv(cfg, ".")) == 2
    assert one_error_line(capsys, "compare").endswith(".: holds einarray output written by "
                                                       f"`einarray run {cfg} -o . --no-plots --no-progress`, "
                                                       "not einarray compare output; pass --force to replace it")
    assert main(compare_argv(cfg, ".", "--force")) == 0
    assert {p.name for p in work.iterdir()} == written(work, "compare", COMPARE_FILES) | {MANIFEST}
    assert Path.cwd() == work and work.is_dir()  # the working directory was filled, not replaced
    assert {p.name for p in tmp_path.iterdir()} == {"cfg", "work"}


def test_dot_in_a_users_directory_is_refused(tmp_path, cfg, capsys, monkeypatch):
    d = thesis(tmp_path)
    monkeypatch.chdir(d)
    before = snapshot(tmp_path)
    assert main(run_argv(cfg, ".", "--force")) == 2
    assert one_error_line(capsys, "run").startswith("einarray run: error: .: exists and is not an einarray")
    assert snapshot(tmp_path) == before


def test_sweep_resumes_its_own_directory_only(tmp_path, cfg, capsys):
    out = tmp_path / "s"
    assert main(sweep_argv(cfg, out)) == 0
    m = json.loads((out / MANIFEST).read_text())
    assert m["kind"] == "sweep" and "results.jsonl" in m["files"]
    assert main(sweep_argv(cfg, out)) == 0  # resumed: nothing to run again
    assert len((out / "results.jsonl").read_text().splitlines()) == 1
    r = tmp_path / "r"
    assert main(run_argv(cfg, r)) == 0
    capsys.readouterr()
    before = snapshot(r)
    assert main(sweep_argv(cfg, r)) == 2
    assert one_error_line(capsys, "sweep").endswith(", not a sweep; give another directory")
    assert snapshot(r) == before


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("state", ["new", "empty", "report"])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))])
def test_a_failure_leaves_the_target_as_it_was(tmp_path, cfg, capsys, monkeypatch, state, exc):
    out = tmp_path / "out"
    if state == "empty":
        out.mkdir()
    elif state == "report":
        assert main(run_argv(cfg, out)) == 0
        capsys.readouterr()
    before = snapshot(tmp_path)
    import einarray.report as report

    def fail(*a, **k):
        raise exc

    monkeypatch.setattr(report, "render_html", fail)  # after report.json, layers.csv and report.md
    status = main(run_argv(cfg, out, "--force"))
    assert status == (130 if exc is KeyboardInterrupt else 2)
    if exc is not KeyboardInterrupt:
        assert one_error_line(capsys, "run") == f"einarray run: error: {out}: No space left on device"
    assert snapshot(tmp_path) == before  # no partial report, no temporary left


def _enospc_after_half(monkeypatch, under: Path) -> None:
    """Writes of text under ``under`` put half their data on disk, then fail: the disk is full."""
    real = Path.write_text

    def write_text(self, data, *a, **k):
        if str(self).startswith(str(under)) and self.name == "report.md":
            real(self, data[: len(data) // 2], *a, **k)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, data, *a, **k)

    monkeypatch.setattr(Path, "write_text", write_text)


@pytest.mark.parametrize("state", ["new", "report"])
def test_disk_full_injected(tmp_path, cfg, capsys, monkeypatch, state):
    out = tmp_path / "out"
    if state == "report":
        assert main(run_argv(cfg, out)) == 0
        capsys.readouterr()
    before = snapshot(tmp_path)
    _enospc_after_half(monkeypatch, tmp_path)
    assert main(run_argv(cfg, out, "--force")) == 2
    assert one_error_line(capsys, "run") == f"einarray run: error: {out / 'report.md'}: No space left on device"
    assert snapshot(tmp_path) == before


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 4 KiB tmpfs (one page): a report does not fit. Needs root and a kernel that lets us mount."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize("where", ["new", "mountpoint"])
def test_disk_full_on_a_real_tmpfs(tiny_tmpfs, cfg, capsys, where):
    out = tiny_tmpfs / "r" if where == "new" else tiny_tmpfs  # the mount point itself: an empty directory
    assert main(run_argv(cfg, out)) == 2
    err = one_error_line(capsys, "run")
    assert err.startswith(f"einarray run: error: {out}") and err.endswith(": No space left on device"), err
    assert list(tiny_tmpfs.iterdir()) == []  # nothing partial, no temporary


def test_permission_denied_injected(tmp_path, cfg, capsys, monkeypatch):
    real = os.mkdir

    def mkdir(path, *a, **k):
        if str(path).startswith(str(tmp_path / "locked")):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path, *a, **k)

    (tmp_path / "locked").mkdir()
    monkeypatch.setattr(os, "mkdir", mkdir)
    out = tmp_path / "locked" / "r"
    assert main(run_argv(cfg, out)) == 2
    assert one_error_line(capsys, "run") == f"einarray run: error: {out}: cannot create the directory: Permission denied"
    assert list((tmp_path / "locked").iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_permission_denied_real(tmp_path, cfg, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(run_argv(cfg, locked / "r")) == 2
        assert one_error_line(capsys, "run").endswith(f"{locked / 'r'}: cannot create the directory: "
                                                      f"{locked} is not writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_parent_is_a_file(tmp_path, cfg, capsys, command):
    f = tmp_path / "afile"
    f.write_text("x")
    before = snapshot(tmp_path)
    assert main(COMMANDS[command](cfg, f / "sub" / "out")) == 2
    assert one_error_line(capsys, command).endswith(
        f"{f / 'sub' / 'out'}: cannot create the directory: {f} is not a directory")
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("command", ["run", "compare", "sweep"])
def test_proc_path(cfg, capsys, command):
    out = "/proc/einarray-test-output"
    assert main(COMMANDS[command](cfg, out)) == 2
    assert one_error_line(capsys, command).endswith(f"{out}: cannot create the directory: No such file or directory")
    assert not Path(out).exists()


def test_broken_symlink_is_refused(tmp_path, cfg, capsys):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    assert main(run_argv(cfg, link)) == 2
    assert one_error_line(capsys, "run").endswith(f"{link}: is a broken symbolic link; give a directory")
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_any_os_error_of_a_command_is_one_line(cfg, capsys, monkeypatch):
    import einarray.flow as flow

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/data/weights.npz")

    monkeypatch.setattr(flow, "run", denied)
    assert main(["run", str(cfg), "--no-progress"]) == 2
    assert one_error_line(capsys, "run") == "einarray run: error: /data/weights.npz: Permission denied"


@pytest.mark.parametrize("kind", ["dir", "parent-file"])
def test_file_outputs_name_the_path(tmp_path, capsys, kind):
    if kind == "dir":
        target = tmp_path / "g.v"
        target.mkdir()
        msg = f"{target}: is a directory; expected a file name"
    else:
        (tmp_path / "afile").write_text("x")
        target = tmp_path / "afile" / "g.v"
        msg = f"{target}: cannot write the file: {target.parent} is not a directory"
    before = snapshot(tmp_path)
    assert main(["verilog", "gelu", "-o", str(target)]) == 2
    assert one_error_line(capsys, "verilog") == f"einarray verilog: error: {msg}"
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command,module,name", [("run", "einarray.flow", "run"),
                                                 ("compare", "einarray.compare", "run"),
                                                 ("search", "einarray.search", "search")])
def test_refusal_comes_before_the_work(tmp_path, cfg, capsys, monkeypatch, command, module, name):
    import importlib

    def work(*a, **k):
        raise AssertionError("the simulation or search ran before the output was checked")

    monkeypatch.setattr(importlib.import_module(module), name, work)
    assert main(COMMANDS[command](cfg, thesis(tmp_path), "--force")) == 2
    assert "is not an einarray output directory" in one_error_line(capsys, command)


@pytest.mark.parametrize("exc,text", [
    (OSError(errno.ENOSPC, "No space left on device", "out/report.md"), "out/report.md: No space left on device"),
    (OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b"), "a -> b: Invalid cross-device link"),
    (OSError(errno.EIO, "Input/output error"), "Input/output error"),
])
def test_describe_os_error(exc, text):
    from einarray.cli import describe_os_error

    assert describe_os_error(exc) == text
