-- "Reconcile now": stamp vmclock.zstack.io/reconcile-requested-at with the current UTC time. The operator
-- reconciles on every new value and echoes it to status.lastHandledReconcileAt. Argo CD offers only
-- os.time and os.date (its own strftime: "!" is UTC, %X is HH:MM:SS, and there is no %T).
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["vmclock.zstack.io/reconcile-requested-at"] = os.date("!%Y-%m-%dT%XZ")
return obj
