-- Argo CD health for ciclo.dev MonitorPolicy, from its conditions (ModelFound, Healthy,
-- NoData) and the actions it recorded: a policy that retired its model is Suspended until a
-- new version serves; a breaching rule or a missing model is Degraded; no data yet is
-- Progressing.
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
  hs.message = "Waiting for the first evaluation of generation " .. generation
  return hs
end

-- The newest action; Suspended while the rules still evaluate the version it retired.
local actions = obj.status.actions
if actions ~= nil and #actions > 0 and actions[#actions].action == "retire" then
  local last = actions[#actions]
  local current = true
  if obj.status.rules ~= nil then
    for _, r in ipairs(obj.status.rules) do
      if r.version ~= nil and r.version ~= last.version then
        current = false
      end
    end
  end
  if current then
    hs.status = "Suspended"
    hs.message = "Rule " .. last.rule .. " retired the model at " .. last.version
    if last.message ~= nil and last.message ~= "" then
      hs.message = hs.message .. ": " .. last.message
    end
    return hs
  end
end

local found = condition("ModelFound")
if found ~= nil and found.status == "False" then
  hs.status = "Degraded"
  hs.message = text(found, "The model is not found")
  return hs
end

local healthy = condition("Healthy")
if healthy == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the first evaluation"
  return hs
end
if healthy.status == "True" then
  hs.status = "Healthy"
  hs.message = text(healthy, "Every rule is ok")
  return hs
end
local nodata = condition("NoData")
if healthy.reason == "NoData" and (nodata == nil or nodata.reason ~= "QueryError") then
  hs.status = "Progressing"
  hs.message = "Waiting for data: " .. text(healthy, "")
  return hs
end
hs.status = "Degraded"
hs.message = (healthy.reason or "Unhealthy") .. ": " .. text(healthy, "")
return hs
