#!/usr/bin/env bash
# Example CI step for a pull request that changes VmClockPolicies: show what merging it would do to the
# ZStack VMs, read-only, in the job log (and in $PLAN_DIR/plan.txt for an artifact or a PR comment).
#
# Any CI runs it as a plain shell step, e.g. GitHub Actions `run: examples/ci/vmclock-plan.sh`.
# Needs `vmclock` (pip install vmclock-operator) and a KUBECONFIG that may get VmClockPolicies,
# ZStackConnections and the connection's Secret: the plan reaches ZStack exactly as the operator does,
# honouring the Secret's vmclock.zstack.io/allowed-endpoints annotation. `kubectl` too when MANIFESTS
# is a kustomization.
#
#   MANIFESTS           a directory of manifests or a kustomization (default: policies)
#   VMCLOCK_PLAN_FLAGS  extra `vmclock plan` flags (default: --against-cluster)
#   FAIL_ON_CHANGES=1   fail (exit 2) when something would change, e.g. for a nightly "is Git applied?" job
#   PLAN_DIR            where plan.txt goes (default: vmclock-plan)
set -euo pipefail

manifests=${MANIFESTS:-policies}
out=${PLAN_DIR:-vmclock-plan}
read -ra flags <<<"${VMCLOCK_PLAN_FLAGS---against-cluster}"
mkdir -p "$out"

source=$manifests
if [[ -f $manifests/kustomization.yaml ]]; then
    kubectl kustomize "$manifests" >"$out/manifests.yaml"
    source=$out/manifests.yaml
fi

status=0
vmclock plan -f "$source" "${flags[@]}" >"$out/plan.txt" || status=$?
cat "$out/plan.txt"
case $status in
    0) echo "vmclock plan: merging this writes nothing to ZStack." ;;
    2)
        echo "vmclock plan: merging this writes VM clock tracks (above; also $out/plan.txt)."
        [[ ${FAIL_ON_CHANGES:-0} != 1 ]] || exit 2
        ;;
    *)
        echo "vmclock plan: failed (exit $status); nothing was written." >&2
        exit 1
        ;;
esac
