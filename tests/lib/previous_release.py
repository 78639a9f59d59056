"""The previous release's freehad and freehactl, built once from the git history.

A rolling upgrade is tested against the real previous build: `git archive` of
its commit (by id, not by tag: a CI clone may lack tags) from the checkout
these tests run from, configured and built into a cache under the build
directory (BUILD/previous-release/), and reused across suites and runs (a
stamp file names the commit built). The system tests run its binaries on
namespaced nodes, the nspawn tier copies its freehad into the containers.

    python3 tests/lib/previous_release.py [BUILD]   builds (or finds) it, prints the paths and the time taken
"""
import fcntl
import os
import shutil
import subprocess
import sys
import time

# 0.1.0: main as landed before issue 18, wire version 2 (NEWS).
RELEASE = "0.1.0"
COMMIT = "90e8a28508d3529234b2a0aef15ff052a7f39435"
WIRE_VERSION = 2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Unavailable(Exception):
    """The previous release cannot be built here (the commit is not in this clone, no git): a skip, with why."""


class Build:
    def __init__(self, directory):
        self.directory = directory
        self.freehad = os.path.join(directory, "build", "src", "daemon", "freehad")
        self.freehactl = os.path.join(directory, "build", "src", "ctl", "freehactl")
        self.seconds = 0.0  # what building it took in this call (0 when the cache had it)


def _git(*args, **kw):
    return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, **kw)


def build(build_dir=None, log=sys.stderr):
    """The previous release's Build, built into build_dir/previous-release/ unless
    already there. Raises Unavailable when the commit is not in this checkout."""
    build_dir = build_dir or os.environ.get("FREEHA_BUILD", os.path.join(ROOT, "build"))
    if not shutil.which("git"):
        raise Unavailable("git is not installed: the previous release is built from the git history")
    if _git("rev-parse", "--git-dir").returncode != 0:
        raise Unavailable(f"{ROOT} is not a git checkout: the previous release is built from the git history")
    if _git("cat-file", "-e", COMMIT + "^{commit}").returncode != 0:
        shallow = _git("rev-parse", "--is-shallow-repository", text=True).stdout.strip() == "true"
        raise Unavailable(f"the previous release {RELEASE} (commit {COMMIT[:7]}) is not in this clone"
                          + (" (a shallow clone: git fetch --unshallow)" if shallow else ""))
    result = Build(os.path.join(build_dir, "previous-release", f"{RELEASE}-{COMMIT[:7]}"))
    os.makedirs(result.directory, exist_ok=True)
    stamp = os.path.join(result.directory, "stamp")
    # One builder at a time (suites may start side by side); the others wait and reuse its result.
    with open(os.path.join(result.directory, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamped(stamp) and os.access(result.freehad, os.X_OK) and os.access(result.freehactl, os.X_OK):
            return result
        started = time.monotonic()
        source = os.path.join(result.directory, "source")
        out = os.path.join(result.directory, "build")
        shutil.rmtree(source, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(source)
        archive = subprocess.Popen(["git", "-C", ROOT, "archive", "--format=tar", COMMIT], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", source], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise RuntimeError(f"git archive {COMMIT} failed")
        # Only what a node runs: no tests, no man pages; debugoptimized as the release's default.
        _run(["meson", "setup", out, source, "-Dbuildtype=debugoptimized", "-Dtests=disabled", "-Dman=disabled"], log)
        _run(["ninja", "-C", out, "src/daemon/freehad", "src/ctl/freehactl"], log)
        version = subprocess.run([result.freehad, "--version"], capture_output=True, text=True).stdout
        if RELEASE not in version:
            raise RuntimeError(f"the previous release's freehad says {version.strip()!r}, not {RELEASE}")
        with open(stamp, "w") as f:
            f.write(COMMIT + "\n")
        result.seconds = time.monotonic() - started
        print(f"previous release {RELEASE} ({COMMIT[:7]}) built in {result.seconds:.0f} s: {out}", file=log)
        return result


def _stamped(stamp):
    try:
        with open(stamp) as f:
            return f.read().strip() == COMMIT
    except FileNotFoundError:
        return False


def _run(command, log):
    r = subprocess.run(command, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")


if __name__ == "__main__":
    try:
        b = build(sys.argv[1] if len(sys.argv) > 1 else None)
    except Unavailable as e:
        print(f"SKIP: {e}")
        sys.exit(77)
    print(f"freehad   {b.freehad}\nfreehactl {b.freehactl}\nbuilt in  {b.seconds:.1f} s (0: cached)")
