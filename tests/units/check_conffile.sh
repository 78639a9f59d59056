#!/bin/sh
# The shipped /etc/freeha/freehad.conf states every key freehad knows, each
# commented out at its real default: uncommenting every entry must not change
# `freehad --check-config`, and every key that --check-config prints must be
# in the file.
# Usage: check_conffile.sh FREEHAD_CONF FREEHAD_BINARY
set -eu
conf=$1 binary=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A channel is required and has no default; target mode needs no hooks.
printf '\n[Heartbeat]\nChannel=broadcast 10.1.2.3\n[Services]\nTarget=check.target\n' > "$work/required.conf"
sed -n 's/^#\([A-Za-z]*=.*\)$/\1/p; /^\[/p' "$conf" > "$work/uncommented.conf"
cat "$work/required.conf" >> "$work/uncommented.conf"
"$binary" --config "$work/required.conf" --check-config > "$work/defaults" || {
    echo "FAIL: --check-config rejects the minimal file"; exit 1; }
"$binary" --config "$work/uncommented.conf" --check-config > "$work/shipped" || {
    echo "FAIL: $conf with every entry uncommented is rejected"; exit 1; }
diff -u "$work/defaults" "$work/shipped" || { echo "FAIL: an entry in $conf is not its default"; exit 1; }
missing=$(sed -n 's/^\([A-Za-z]*\)=.*/\1/p' "$work/defaults" | sort -u | while read -r key; do
    grep -q "^#$key=" "$conf" || echo "$key"; done)
[ -z "$missing" ] || { echo "FAIL: $conf lacks:" $missing; exit 1; }
echo "$conf: $(grep -c '^#[A-Za-z]*=' "$conf") entries, every key at its default"
