-- Argo CD health of a ZStackConnection (vmclock.zstack.io/v1alpha1), following the contract in docs/api.md.
-- Argo CD runs it without the string and math libraries, so it only compares whole values.
local hs = {}

local status = obj.status or {}
local ready = nil
for _, condition in ipairs(status.conditions or {}) do
  if condition.type == "Ready" then
    ready = condition
  end
end

local function message_or(fallback)
  if ready.message == nil or ready.message == "" then
    return fallback
  end
  return ready.message
end

-- Ready=False for these reasons does not heal by retrying: the Secret (or its allowed-endpoints annotation),
-- the credentials, the endpoint, the namespace's RoleBinding (NamespaceNotEnabled) or ZStack has to change. Unreachable and NotReady (management node still
-- starting) are retried: Progressing. VmClockPolicy's health uses the same list for status.connection.reason.
local terminal = {
  AuthFailed = true, InvalidSecret = true, SecretNotFound = true,
  EndpointNotAllowed = true, InsecureEndpoint = true, Unsupported = true, NamespaceNotEnabled = true,
}

local generation = obj.metadata.generation
if ready == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to check this connection"
elseif generation ~= nil and (status.observedGeneration ~= generation
    or (ready.observedGeneration ~= nil and ready.observedGeneration ~= generation)) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message_or("Connected")
elseif ready.status == "False" and terminal[ready.reason] then
  hs.status = "Degraded"
  hs.message = message_or(ready.reason)
else
  hs.status = "Progressing"
  hs.message = message_or("Connecting")
end
return hs
