#!/bin/bash
# Downloads Debian 13 (trixie) OpenSSL 3.5 (libssl3t64, openssl) with its glibc (libc6) into a cache
# directory, unpacked, for the OpenSSL 3.5 tests: the programs run through the unpacked ld-linux loader.
# Usage: fetch-openssl35.sh DIR   (idempotent: does nothing when DIR/root already holds them)
set -euo pipefail
dir=$(realpath -m "${1:?usage: fetch-openssl35.sh DIR}")
root=$dir/root
if [ -x "$root/usr/bin/openssl" ] && [ -e "$root/usr/lib/x86_64-linux-gnu/libssl.so.3" ]; then exit 0; fi
mkdir -p "$dir/etc" "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/debs"
# the machine's own Debian archive (its apt sources name it), asked for the next release's suite
mirror=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\).*/\2/p' \
  /etc/apt/sources.list 2>/dev/null | grep -v security | head -n 1)
[ -n "$mirror" ] || { echo "fetch-openssl35: no Debian archive in the apt sources" >&2; exit 1; }
cat > "$dir/etc/trixie.sources" <<SRC
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$dir/etc"
  -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" -o APT::Architecture=amd64)
apt-get "${apt_opts[@]}" -qq update
(cd "$dir/debs" && apt-get "${apt_opts[@]}" -qq download libssl3t64 libc6 openssl)
rm -rf "$root.tmp" && mkdir -p "$root.tmp"
for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$root.tmp"; done
rm -rf "$root" && mv "$root.tmp" "$root"
