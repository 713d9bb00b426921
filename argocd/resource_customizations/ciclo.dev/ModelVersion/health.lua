-- Argo CD health for ciclo.dev ModelVersion, from status.phase and the Validated and
-- Available conditions (Available=False: its pods never became ready).
-- A version rolled back by the operator (a MonitorPolicy or `ciclo rollback`) is Degraded;
-- the last version of a retired model is Suspended; on the way in, an Evaluating version is
-- Progressing, one AwaitingApproval Suspended (like a paused rollout), a Rejected one
-- Degraded; every other phase is Healthy.
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function text(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local generation = obj.metadata.generation or 0
if obj.status == nil or (obj.status.observedGeneration or 0) < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local phase = obj.status.phase
local validated = condition("Validated")
local available = condition("Available")
local serving = condition("Serving")

if available ~= nil and available.status == "False" then
  hs.status = "Degraded"
  hs.message = "Failed to start: " .. text(available, "see the Available condition")
  return hs
end
if phase == "Failed" or (validated ~= nil and validated.status == "False") then
  hs.status = "Degraded"
  hs.message = "Validation failed: " .. text(validated, "see the Validated condition")
  return hs
end
if phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = "Rolled back: " .. text(serving, "see status.rolledBack")
  return hs
end
if phase == "Rejected" then
  hs.status = "Degraded"
  hs.message = "Rejected: " .. text(serving, "see status.reviews")
  return hs
end
-- The way in (spec.promotion of its Model): evaluated against the champion, then a person.
if phase == "Evaluating" then
  hs.status = "Progressing"
  hs.message = text(validated, "Being evaluated against the champion")
  return hs
end
if phase == "AwaitingApproval" then
  hs.status = "Suspended"
  hs.message = "Awaiting approval: " .. text(serving, "see ciclo approve")
  return hs
end
if phase == "Retired" then
  hs.status = "Suspended"
  hs.message = text(serving, "The model is retired")
  return hs
end
-- Not validated yet matters only for a version on its way to serve; a registered one
-- is validated when it is first deployed.
local on_its_way = phase == nil or phase == "Deploying" or phase == "Serving"
if phase == nil or phase == "Deploying" or (on_its_way and validated ~= nil and validated.status == "Unknown") then
  hs.status = "Progressing"
  hs.message = text(validated, "Waiting for the artifact to be validated")
  return hs
end

hs.status = "Healthy"
hs.message = phase .. ": " .. text(serving, "")
return hs
