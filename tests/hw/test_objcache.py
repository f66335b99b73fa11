"""The Verilator runtime-object cache (tests/hw/objcache.py), driven with a fake compiler
that records each call and writes an object and a ``-MMD`` dependency file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

WRAPPER = Path(__file__).resolve().parent / "objcache.py"

FAKE_CXX = """#!/bin/sh
# fake compiler: "-c -o OBJ SRC"; the object is the source's text, deps in OBJ.d
out=""; src=""
while [ $# -gt 0 ]; do
  case "$1" in -o) out="$2"; shift ;; *.cpp) src="$1" ;; esac; shift
done
echo "$src" >> "$CALLS"
cat "$src" > "$out"
printf '%s: \\\\\\n %s %s\\n' "$out" "$src" "$EXTRA_DEP" > "${out%.o}.d"
"""


@pytest.fixture
def env(tmp_path):
    cxx = tmp_path / "fakecxx"
    cxx.write_text(FAKE_CXX)
    cxx.chmod(0o755)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "runtime.cpp").write_text("runtime v1\n")
    (lib / "runtime.h").write_text("header v1\n")
    calls = tmp_path / "calls.txt"
    calls.touch()
    e = dict(os.environ, CALLS=str(calls), OBJCACHE_DIR=str(tmp_path / "cache"),
             EXTRA_DEP=str(lib / "runtime.h"))
    return {"cxx": cxx, "lib": lib, "calls": calls, "env": e, "tmp": tmp_path}


def _compile(env, build: Path, src: Path, obj: str = "runtime.o", **extra) -> None:
    build.mkdir(exist_ok=True)
    subprocess.run([sys.executable, str(WRAPPER), str(env["cxx"]), "-O0", "-c", "-o", obj, str(src)],
                   cwd=build, env={**env["env"], **extra}, check=True)


def _n_calls(env) -> int:
    return len(env["calls"].read_text().splitlines())


def test_runtime_object_compiled_once_for_many_builds(env):
    src = env["lib"] / "runtime.cpp"
    for k in range(3):
        _compile(env, env["tmp"] / f"build{k}", src)
    assert _n_calls(env) == 1
    for k in range(3):  # every build got the object and its dependency file
        assert (env["tmp"] / f"build{k}" / "runtime.o").read_text() == "runtime v1\n"
        assert "runtime.h" in (env["tmp"] / f"build{k}" / "runtime.d").read_text()


def test_changed_source_flags_or_dependency_recompile(env):
    src = env["lib"] / "runtime.cpp"
    _compile(env, env["tmp"] / "b0", src)
    src.write_text("runtime v2\n")
    _compile(env, env["tmp"] / "b1", src)
    assert (env["tmp"] / "b1" / "runtime.o").read_text() == "runtime v2\n"
    assert _n_calls(env) == 2
    hdr = env["lib"] / "runtime.h"
    hdr.write_text("header v2, longer\n")
    _compile(env, env["tmp"] / "b2", src)
    assert _n_calls(env) == 3
    _compile(env, env["tmp"] / "b3", src, obj="other.o")  # another object name: another key
    assert _n_calls(env) == 4


def test_design_dependent_compiles_are_not_cached(env):
    b0, b1 = env["tmp"] / "b0", env["tmp"] / "b1"
    for b in (b0, b1):  # a source in the build directory
        b.mkdir()
        (b / "Vtop.cpp").write_text(f"design {b.name}\n")
        _compile(env, b, b / "Vtop.cpp", obj="Vtop.o")
    assert (b1 / "Vtop.o").read_text() == "design b1\n"
    for b in (b0, b1):  # a shared source that includes a header of the build directory
        (b / "Vtop.h").write_text("top\n")
        _compile(env, b, env["lib"] / "runtime.cpp", obj="verilator.o", EXTRA_DEP="Vtop.h")
    assert _n_calls(env) == 4
    assert not (env["tmp"] / "cache").exists()


def test_without_cache_dir_the_compiler_just_runs(env):
    e = dict(env["env"])
    del e["OBJCACHE_DIR"]
    b = env["tmp"] / "b"
    b.mkdir()
    for _ in range(2):
        subprocess.run([sys.executable, str(WRAPPER), str(env["cxx"]), "-c", "-o", "runtime.o",
                        str(env["lib"] / "runtime.cpp")], cwd=b, env=e, check=True)
    assert _n_calls(env) == 2


def test_compiler_failure_is_passed_on_and_not_cached(env, tmp_path):
    bad = tmp_path / "failcxx"
    bad.write_text("#!/bin/sh\necho nope >&2\nexit 3\n")
    bad.chmod(0o755)
    b = tmp_path / "b"
    b.mkdir()
    res = subprocess.run([sys.executable, str(WRAPPER), str(bad), "-c", "-o", "runtime.o",
                          str(env["lib"] / "runtime.cpp")], cwd=b, env=env["env"])
    assert res.returncode == 3
    assert not (tmp_path / "cache").exists()
