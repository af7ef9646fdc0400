#!/usr/bin/env bash
# Cold `make test`, as on a fresh machine: a clean clone of HEAD, and every cache the project fills
# (control plane, helm, Prometheus, Go's module and build caches, pip) pointed at empty directories.
# Prints wall time, CPU time and the load average, and keeps the log: a number, not a pass/fail.
#
#   bench/cold_test.sh [WORKDIR]        (default: a new directory under /tmp; removed unless KEEP=1)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d /tmp/vmclock-cold.XXXXXX)}"
mkdir -p "$work"
git clone --quiet "$repo" "$work/clone"
export XDG_CACHE_HOME="$work/cache" GOPATH="$work/gopath" PIP_CACHE_DIR="$work/cache/pip"
unset CONTROLPLANE_CACHE KUBEBUILDER_ASSETS TEST_ASSET_KUBE_APISERVER TEST_ASSET_ETCD TEST_ASSET_KUBECTL
echo "cold make test of $(git -C "$work/clone" rev-parse --short HEAD) in $work (load before: $(cut -d' ' -f1-3 /proc/loadavg))"
started=$(date +%s)
status=0
/usr/bin/time -f "cpu: user %U s, system %S s, wall %e s" -o "$work/time.txt" \
    make -C "$work/clone" test > "$work/make-test.log" 2>&1 || status=$?
echo "exit $status after $(( $(date +%s) - started )) s; $(cat "$work/time.txt" | tail -1); load after: $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E "built .* in |compiled in |passed|failed" "$work/make-test.log" || true
echo "log: $work/make-test.log"
if [[ "${KEEP:-0}" != 1 && $status -eq 0 ]]; then rm -rf "$work/gopath" "$work/cache" "$work/clone"; fi
exit $status
