-- HAProxy 2.6 puts a server that just got an address from DNS in rotation *before* its first
-- health check ("start OK but check immediately"; 3.1 added `init-state down` for this), so
-- a new container that serves but fails its check still gets a few requests. This task keeps
-- every server at weight 0 while it has no address or its health is not full, i.e. until a
-- check has passed since it got its address: a new container gets no request before that,
-- and an old one leaves rotation at its first failed check.
local PERIOD_MS = 50

local function ready(stats)
    if string.find(stats.status, "MAINT", 1, true) then
        return false
    end
    return stats.check_health == stats.check_rise + stats.check_fall - 1
end

core.register_task(function()
    while true do
        for _, backend in pairs(core.backends) do
            for _, server in pairs(backend.servers) do
                local stats = server:get_stats()
                if stats.check_rise then
                    local weight = server:get_weight()
                    if ready(stats) then
                        if weight == 0 then server:set_weight("100%") end
                    elseif weight ~= 0 then
                        server:set_weight("0")
                    end
                end
            end
        end
        core.msleep(PERIOD_MS)
    end
end)
