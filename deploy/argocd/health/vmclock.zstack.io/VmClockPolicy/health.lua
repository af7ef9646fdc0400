-- Argo CD health of a VmClockPolicy (vmclock.zstack.io/v1alpha1), following the contract in docs/api.md.
-- Argo CD runs it without the string and math libraries, so it only compares whole values.
local hs = {}

local status = obj.status or {}
local ready, synced = nil, nil
for _, condition in ipairs(status.conditions or {}) do
  if condition.type == "Ready" then
    ready = condition
  elseif condition.type == "Synced" then
    synced = condition
  end
end

local function message_or(condition, fallback)
  if condition.message == nil or condition.message == "" then
    return fallback
  end
  return condition.message
end

-- Ready=False for these reasons does not heal by retrying: the spec, ZStack or a Secret has to change.
-- Drifted only happens in Observe mode, which never writes: a person has to act, so it is Degraded too.
local terminal = {
  InvalidSpec = true, VmNotFound = true, Conflict = true, ConnectionNotReady = true, Drifted = true,
}

local annotations = obj.metadata.annotations or {}
local generation = obj.metadata.generation
if annotations["vmclock.zstack.io/paused"] == "true" then
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
  hs.status = "Healthy"
  hs.message = message_or(ready, "Every selected VM has the desired clock track")
elseif ready.status == "False" and terminal[ready.reason] then
  hs.status = "Degraded"
  hs.message = message_or(ready, ready.reason)
else
  hs.status = "Progressing"
  hs.message = message_or(ready, "Reconciling")
end
return hs
