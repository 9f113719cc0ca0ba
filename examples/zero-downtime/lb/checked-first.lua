-- HAProxy 2.6 puts a server that just got an address from DNS in rotation *before* its first
-- health check ("start OK but check immediately"; 3.1 added `init-state down` for this), so
-- a new container that serves but fails its check still gets a few requests.
--
-- This task keeps a server at weight 0 from the moment it has no address (MAINT) until a
-- check has passed at its current address (health full); from then on HAProxy's own
-- rise/fall decide, as usual. Loaded with `lua-load` in the global section; it only changes
-- weights, and leaves servers without health checks alone.
local PERIOD_MS = 50
local checked = {} -- "backend/server" -> the address a check passed at

local function ready(key, server)
    local stats = server:get_stats()
    -- First: a server without an address has its checks paused, and no check fields.
    if string.find(stats.status, "MAINT", 1, true) then
        checked[key] = nil
        return false
    end
    if not stats.check_rise then
        return true -- not health-checked
    end
    local address = server:get_addr()
    if checked[key] ~= address
        and stats.check_health == stats.check_rise + stats.check_fall - 1 then
        checked[key] = address
    end
    return checked[key] == address
end

core.register_task(function()
    while true do
        for backend_name, backend in pairs(core.backends) do
            for server_name, server in pairs(backend.servers) do
                local weight = server:get_weight()
                if ready(backend_name .. "/" .. server_name, server) then
                    if weight == 0 then server:set_weight("100%") end
                elseif weight ~= 0 then
                    server:set_weight("0")
                end
            end
        end
        core.msleep(PERIOD_MS)
    end
end)
