-- Argo CD health for ciclo.dev Model. The operator never writes spec, so after an automatic
-- rollback the Application stays Synced (spec.version is what Git says) while this check
-- shows Degraded: status.servingVersion differs from spec.version, condition Degraded=True.
-- A retirement by a MonitorPolicy (status.retirement) is Suspended, as spec.retired is.
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

local ready = condition("Ready")
local degraded = condition("Degraded")
local progressing = condition("Progressing")

if obj.spec.retired == true or obj.status.retirement ~= nil then
  hs.status = "Suspended"
  hs.message = text(ready, "The model is retired: nothing serves")
  return hs
end

local serving = obj.status.servingVersion
-- A canary (spec.rollout) aborted on a breach: the champion took all traffic back.
local canary = obj.status.canary
-- A shadow is held out when its comparison with the champion failed.
if canary ~= nil and canary.phase == "Aborted" and canary.version == obj.spec.version then
  hs.status = "Degraded"
  if canary.strategy == "shadow" then
    hs.message = "Shadow of " .. canary.version .. " aborted, " .. canary.champion ..
      " serves: " .. (canary.message or "")
  else
    hs.message = "Canary of " .. canary.version .. " aborted at step " ..
      ((canary.step or 0) + 1) .. ", " .. canary.champion .. " serves: " .. (canary.message or "")
  end
  return hs
end
-- An A/B test that ended without promoting spec.version: the user decides what next.
if canary ~= nil and canary.phase == "Concluded" and canary.version == obj.spec.version then
  hs.status = "Suspended"
  hs.message = "A/B test of " .. canary.version .. " concluded, " .. canary.champion ..
    " serves: " .. (canary.message or "")
  return hs
end
if canary ~= nil and canary.phase == "Progressing" and canary.version == obj.spec.version then
  hs.status = "Progressing"
  local kind = canary.strategy == "shadow" and "Shadow" or "Canary"
  hs.message = kind .. " of " .. canary.version .. ": " .. (canary.message or "")
  return hs
end
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = (degraded.reason or "Degraded") .. ": " .. text(degraded, "")
  return hs
end
-- A new version coming up while the old one serves is progress, not a fault.
local rollout = obj.status.rollout
if rollout ~= nil and rollout.version == obj.spec.version then
  hs.status = "Progressing"
  hs.message = text(progressing, "Rolling out " .. rollout.version)
  return hs
end
if serving ~= nil and serving ~= obj.spec.version then
  hs.status = "Degraded"
  hs.message = serving .. " serves instead of spec.version " .. obj.spec.version
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready, "Serving " .. tostring(serving))
  return hs
end

hs.status = "Progressing"
if progressing ~= nil and progressing.status == "True" then
  hs.message = text(progressing, "Rolling out")
else
  hs.message = text(ready, "Waiting for the model to serve")
end
return hs
