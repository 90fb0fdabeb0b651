#!/bin/bash
# `make release`: DIST/carnot-VERSION-linux-x86_64, its tarball, the SBOM, release notes from WORKLOG.md,
# SHA256SUMS and a detached minisign signature of it (why minisign: README, "Releases").
#   release/bundle.sh VERSION SECRET_KEY PUBLIC_KEY DIST [SINCE]
set -euo pipefail
version=$1 key=$2 pub=$3 dist=$4 since=${5:-}
name=carnot-$version-linux-x86_64
[ -x carnot ] || { echo "release: ./carnot is missing (make carnot)" >&2; exit 1; }
built=$(./carnot --version)
[ "$built" = "$version" ] || { echo "release: ./carnot says $built, package.json $version" >&2; exit 1; }
# the last commit's time: the same tree gives the same tarball and SBOM
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
if [ ! -f "$key" ]; then
  mkdir -p "$(dirname "$key")" "$(dirname "$pub")"
  minisign -G -W -s "$key" -p "$pub" >/dev/null
  echo "release: created the signing key $key (unencrypted; keep it) and its public key $pub (publish it)" >&2
fi
rm -rf "$dist"
mkdir -p "$dist"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -m 0755 carnot "$dist/$name"
bun release/sbom.ts > "$dist/carnot-$version.cdx.json"
bun release/notes.ts "$version" ${since:+--since "$since"} > "$dist/RELEASE-NOTES-$version.md"
mkdir "$stage/$name"
install -m 0755 carnot "$stage/$name/carnot"
install -m 0644 README.md "$dist/carnot-$version.cdx.json" "$dist/RELEASE-NOTES-$version.md" "$stage/$name/"
find "$stage/$name" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner -C "$stage" -cf - "$name" |
  gzip -n -6 > "$dist/$name.tar.gz"
(cd "$dist" && sha256sum "$name" "$name.tar.gz" "carnot-$version.cdx.json" "RELEASE-NOTES-$version.md" > SHA256SUMS)
minisign -S -s "$key" -m "$dist/SHA256SUMS" -x "$dist/SHA256SUMS.minisig" -t "carnot $version SHA256SUMS" >/dev/null
cp "$pub" "$dist/carnot-release.pub"
minisign -V -q -p "$dist/carnot-release.pub" -m "$dist/SHA256SUMS"
echo "release: $dist/: $name, $name.tar.gz, carnot-$version.cdx.json, RELEASE-NOTES-$version.md, SHA256SUMS, SHA256SUMS.minisig, carnot-release.pub"
