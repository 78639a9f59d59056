#!/usr/bin/env python3
"""packaging/check-versions.py passes on the tree, and names each disagreement
with NEWS in a copy of the files it reads, edited one at a time."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
CHECK = os.path.join(ROOT, "packaging", "check-versions.py")
FILES = ["NEWS", "meson.build", "packaging/debian/changelog", "packaging/rpm/freeha.spec", "src/core/wire.h",
         "tests/lib/previous_release.py"]


class CheckVersions(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="freeha-versions-")
        for f in FILES:
            os.makedirs(os.path.dirname(os.path.join(self.dir, f)), exist_ok=True)
            shutil.copy(os.path.join(ROOT, f), os.path.join(self.dir, f))

    def tearDown(self):
        shutil.rmtree(self.dir)

    def check(self):
        return subprocess.run([sys.executable, CHECK, self.dir], capture_output=True, text=True)

    def edit(self, path, pattern, replacement):
        p = os.path.join(self.dir, path)
        with open(p) as f:
            text = f.read()
        changed, n = re.subn(pattern, replacement, text, count=1, flags=re.M | re.S)
        self.assertEqual(n, 1, f"{pattern!r} not in {path}")
        with open(p, "w") as f:
            f.write(changed)

    def assert_fails(self, *naming):
        r = self.check()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        for word in naming:
            self.assertIn(word, r.stderr)

    def test_the_tree_agrees(self):
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("agree", r.stdout)

    def test_meson_version_ahead_of_news(self):
        self.edit("meson.build", r"^  version: '[^']*',$", "  version: '9.9.9',")
        self.assert_fails("meson.build says version 9.9.9")

    def test_a_release_missing_from_the_debian_changelog(self):
        self.edit("packaging/debian/changelog", r"^freeha \(0\.1\.0\).*\Z", "")
        self.assert_fails("packaging/debian/changelog has entries ['0.2.0']")

    def test_rpm_version_behind(self):
        self.edit("packaging/rpm/freeha.spec", r"^Version: *\S+$", "Version:        0.1.0")
        self.assert_fails("Version: 0.1.0")

    def test_rpm_changelog_without_the_newest_release(self):
        self.edit("packaging/rpm/freeha.spec", r"^\* [^\n]* - 0\.2\.0-1\n.*?\n\n", "")
        self.assert_fails("%changelog has entries ['0.1.0']")

    def test_wire_version_not_the_one_news_names(self):
        self.edit("src/core/wire.h", r"constexpr std::uint8_t kVersion = \d+;", "constexpr std::uint8_t kVersion = 4;")
        self.assert_fails("kVersion is 4")

    def test_previous_release_build_of_another_commit(self):
        self.edit("tests/lib/previous_release.py", r'^COMMIT = "[0-9a-f]+"$', 'COMMIT = "' + "1" * 40 + '"')
        self.assert_fails("tests/lib/previous_release.py builds")


if __name__ == "__main__":
    unittest.main(verbosity=2)
