#!/usr/bin/env python3
"""Checks that every place naming freeha's release follows NEWS, the one list of releases:
meson.build's version is NEWS's newest release; packaging/debian/changelog and
packaging/rpm/freeha.spec's %changelog have one entry per NEWS release, in the same
order, and Version: is the newest; NEWS's wire versions of the newest release and the
one before are src/core/wire.h's kVersion and kPreviousVersion, and the one before
names the git commit that tests/lib/previous_release.py builds.
Usage: check-versions.py [SOURCE_ROOT]      (prints one line per disagreement; exit 1)
"""
import os
import re
import sys


def releases(root):
    """NEWS's releases, newest first: [(version, wire version, commit or None)]."""
    out = []
    if not os.path.exists(os.path.join(root, "NEWS")):
        return out
    with open(os.path.join(root, "NEWS")) as f:
        for line in f:
            m = re.match(r"^(\d+\.\d+\.\d+) \(wire version (\d+)\)(?:, git commit ([0-9a-f]{7,40}))?$", line.rstrip())
            if m:
                out.append((m.group(1), int(m.group(2)), m.group(3)))
    return out


def problems(root):
    def read(*path):
        with open(os.path.join(root, *path)) as f:
            return f.read()

    news = releases(root)
    if not news:
        return ["NEWS: no release line ('X.Y.Z (wire version N)')"]
    found = []
    versions = [v for v, _, _ in news]
    m = re.search(r"^  version: '([^']*)',$", read("meson.build"), re.M)
    meson = m.group(1) if m else None
    if meson != versions[0]:
        found.append(f"meson.build says version {meson}, NEWS's newest release is {versions[0]}")
    deb = re.findall(r"^freeha \(([^)]*)\) ", read("packaging", "debian", "changelog"), re.M)
    if deb != versions:
        found.append(f"packaging/debian/changelog has entries {deb}, NEWS has releases {versions}")
    spec = read("packaging", "rpm", "freeha.spec")
    m = re.search(r"^Version: *(\S+)$", spec, re.M)
    if not m or m.group(1) != versions[0]:
        found.append(f"packaging/rpm/freeha.spec says Version: {m.group(1) if m else None}, "
                     f"NEWS's newest release is {versions[0]}")
    rpm = re.findall(r"^\* .* - (\S+)-\d+$", spec.split("\n%changelog\n", 1)[-1], re.M)
    if rpm != versions:
        found.append(f"packaging/rpm/freeha.spec's %changelog has entries {rpm}, NEWS has releases {versions}")
    wire = read("src", "core", "wire.h")
    for name, index in (("kVersion", 0), ("kPreviousVersion", 1)):
        m = re.search(rf"constexpr std::uint8_t {name} = (\d+);", wire)
        if index < len(news) and (not m or int(m.group(1)) != news[index][1]):
            found.append(f"src/core/wire.h's {name} is {m.group(1) if m else None}, NEWS says release "
                         f"{news[index][0]} speaks wire version {news[index][1]}")
    if len(news) > 1:
        if not news[1][2]:
            found.append(f"NEWS: the previous release {news[1][0]} names no git commit (', git commit ID')")
        sys.path.insert(0, os.path.join(root, "tests", "lib"))
        import previous_release
        built = (previous_release.RELEASE, previous_release.WIRE_VERSION)
        if built != news[1][:2] or not previous_release.COMMIT.startswith(news[1][2] or "-"):
            found.append(f"tests/lib/previous_release.py builds {built[0]} (wire {built[1]}) at "
                         f"{previous_release.COMMIT[:7]}, NEWS's previous release is {news[1][0]} "
                         f"(wire {news[1][1]}) at {news[1][2]}")
    return found


if __name__ == "__main__":
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    found = problems(root)
    for p in found:
        print(f"check-versions: {p}", file=sys.stderr)
    if not found:
        print(f"check-versions: {', '.join(v for v, _, _ in releases(root))} agree (NEWS, meson.build, "
              "debian/changelog, freeha.spec, wire.h, the previous-release build)")
    sys.exit(1 if found else 0)
