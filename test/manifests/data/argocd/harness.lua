-- Runs an Argo CD health script the way Argo CD does: the object as the global `obj`, only
-- the base and table libraries open (no string, io or os), the returned table read back.
-- Usage: lua5.1 harness.lua SCRIPT OBJECT, where OBJECT is a Lua file returning the object
-- as a table. Prints the status on the first line and the message after it; exits non-zero
-- (reason on stderr) when the script fails or returns something else than a table.
local script_path, object_path = arg[1], arg[2]

local file = assert(io.open(script_path, "r"))
local source = file:read("*a")
file:close()
local chunk, load_error = loadstring(source, "=health.lua")
if chunk == nil then
  io.stderr:write("cannot load the script: ", load_error, "\n")
  os.exit(2)
end

local env = { obj = dofile(object_path), table = table }
for _, name in ipairs({
  "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print", "rawequal",
  "rawget", "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "unpack",
  "xpcall", "_VERSION",
}) do
  env[name] = _G[name]
end
env._G = env
setfenv(chunk, env)

local ok, hs = pcall(chunk)
if not ok then
  io.stderr:write("the script failed: ", tostring(hs), "\n")
  os.exit(3)
end
if type(hs) ~= "table" then
  io.stderr:write("the script returned a ", type(hs), ", not a table\n")
  os.exit(4)
end
io.write(tostring(hs.status), "\n", tostring(hs.message))
