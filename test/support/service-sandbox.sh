#!/bin/bash
# Runs a command the way systemd would run packaging/carnot.service, as far as this machine allows without
# systemd as PID 1 (test/packaging/systemd.test.ts):
#   ProtectSystem=strict, ProtectKernelTunables=, ProtectControlGroups=: every mount read-only but /proc, /dev
#     and the state and cache directories; PrivateTmp=: new /tmp and /var/tmp;
#   DynamicUser=, AmbientCapabilities=: user nobody with only CAPS, in its ambient set;
#   SystemCallFilter=, RestrictNamespaces=: PROFILE (an OCI seccomp profile) applied by `carnot seccomp
#     --apply`, which sets no_new_privs (NoNewPrivileges=) before the filter.
# Usage: service-sandbox.sh STATE CACHE CAPS PROFILE CARNOT COMMAND...
set -euo pipefail
exec unshare --mount --propagation private -- bash -c '
set -euo pipefail
STATE=$1 CACHE=$2 CAPS=$3 PROFILE=$4 CARNOT=$5
shift 5
mount --bind "$STATE" "$STATE"
mount --bind "$CACHE" "$CACHE"
for mp in $(awk "{ print \$5 }" /proc/self/mountinfo); do
  case "$mp" in /proc | /proc/* | /dev | /dev/* | "$STATE" | "$CACHE") continue ;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null || echo "sandbox: $mp stays writable" >&2
done
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /var/tmp
export STATE_DIRECTORY=$STATE CACHE_DIRECTORY=$CACHE HOME=/nonexistent
exec capsh --caps="$CAPS+eip cap_setpcap,cap_setuid,cap_setgid+ep" --keep=1 --user=nobody --addamb="$CAPS" \
  -- -c "exec \"\$@\"" sandbox "$CARNOT" seccomp --apply "$PROFILE" -- "$@"
' sandbox "$@"
