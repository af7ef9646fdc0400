-- Argo CD resource actions of a VmClockPolicy. "reconcile" asks the operator to reconcile now; it is
-- disabled while the policy is being deleted (the operator then only runs its deletion policy).
local actions = {}
actions["reconcile"] = {
  ["iconClass"] = "fa fa-fw fa-sync",
  ["displayName"] = "Reconcile now",
  ["disabled"] = obj.metadata.deletionTimestamp ~= nil,
}
return actions
