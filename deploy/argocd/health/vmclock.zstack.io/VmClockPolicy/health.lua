-- Argo CD health of a VmClockPolicy (vmclock.zstack.io/v1alpha1), following the contract in docs/api.md.
-- Argo CD runs it without the string and math libraries, so it only compares whole values. It reads only
-- metadata and status, never spec: UUID-list and selector policies are judged alike.
local hs = {}

local status = obj.status or {}
local ready, synced, effective = nil, nil, nil
for _, condition in ipairs(status.conditions or {}) do
  if condition.type == "Ready" then
    ready = condition
  elseif condition.type == "Synced" then
    synced = condition
  elseif condition.type == "Effective" then
    effective = condition
  end
end

local function message_or(condition, fallback)
  if condition.message == nil or condition.message == "" then
    return fallback
  end
  return condition.message
end

-- The operator pauses on "true" in any letter case with nothing around it. Without string.lower, the
-- 16 case spellings of "true" are listed instead, so both agree on every value.
local paused_values = {
  ["true"] = true, ["truE"] = true, ["trUe"] = true, ["trUE"] = true,
  ["tRue"] = true, ["tRuE"] = true, ["tRUe"] = true, ["tRUE"] = true,
  ["True"] = true, ["TruE"] = true, ["TrUe"] = true, ["TrUE"] = true,
  ["TRue"] = true, ["TRuE"] = true, ["TRUe"] = true, ["TRUE"] = true,
}

-- Ready=False for these reasons does not heal by retrying: the spec, ZStack or a Secret has to change.
-- Drifted only happens in Observe mode, which never writes: a person has to act, so it is Degraded too.
local terminal = { InvalidSpec = true, VmNotFound = true, Conflict = true, Drifted = true }

-- status.connection.reason is the referenced ZStackConnection's own Ready reason (or NotFound). Only these
-- need a person; Unreachable and NotReady are retried, and a missing connection may arrive in the same sync.
local terminal_connection = {
  AuthFailed = true, InvalidSecret = true, SecretNotFound = true,
  EndpointNotAllowed = true, InsecureEndpoint = true, Unsupported = true, NamespaceNotEnabled = true,
}

-- Whether Ready=False is final. Argo CD has no progress deadline for custom resources, so PartiallyApplied
-- with failed VMs and nothing pending would otherwise stay Progressing forever.
local function needs_a_person(reason)
  if reason == "ConnectionNotReady" then
    local connection = status.connection
    return connection ~= nil and terminal_connection[connection.reason] == true
  end
  if reason == "PartiallyApplied" then
    local summary = status.summary or {}
    return (summary.failed or 0) > 0 and (summary.pending or 0) == 0
  end
  return terminal[reason] == true
end

local annotations = obj.metadata.annotations or {}
local generation = obj.metadata.generation
if paused_values[annotations["vmclock.zstack.io/paused"]] then
  -- Paused by the user: Suspended, like a paused Deployment, even before the operator has reacted.
  hs.status = "Suspended"
  hs.message = "Paused by the vmclock.zstack.io/paused annotation: nothing is written to ZStack"
elseif ready == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report on this policy"
elseif generation ~= nil and (status.observedGeneration ~= generation
    or (ready.observedGeneration ~= nil and ready.observedGeneration ~= generation)) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
elseif synced ~= nil and synced.reason == "ReconcilePaused" then
  hs.status = "Suspended"
  hs.message = message_or(synced, "Reconciliation is paused")
elseif ready.status == "True" then
  -- Effective=False (VMs wait for a restart) stays Healthy: the apply succeeded, and the restarts are the
  -- VM owners' to schedule. Degraded would hold back every later sync wave until each VM was rebooted.
  hs.status = "Healthy"
  hs.message = message_or(ready, "Every selected VM has the desired clock track")
  if effective ~= nil and effective.status == "False" then
    hs.message = hs.message .. "; " .. message_or(effective, "VMs wait for a restart")
  end
elseif ready.status == "False" and needs_a_person(ready.reason) then
  hs.status = "Degraded"
  hs.message = message_or(ready, ready.reason)
else
  hs.status = "Progressing"
  hs.message = message_or(ready, "Reconciling")
end
return hs
