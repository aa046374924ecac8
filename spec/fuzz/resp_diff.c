/* resp_diff.c — libFuzzer target: the C RESP reader (bindings/lresp.c,
** goluarun.respparse) against the Lua reference parser in
** lua/goluarun/resp.lua, differentially. The comparison itself is Lua
** (spec/fuzz/resp_diff.lua: same bytes, same pieces, same values then the
** same error, through read() and tryread()/fill()); this file makes one Lua
** state with lua/ and spec/ (support.resp_runs) on its path and respparse
** preloaded, and aborts when the comparison raises. Needs Debian's lua-lpeg (resp.lua's grammars).
** Single-threaded.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lresp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;

static void fail(const char *what, const char *why) {
  fprintf(stderr, "resp_diff: %s: %s\n", what, why ? why : "?");
  abort();
}

/* the state, with the comparison function in the registry's [1] slot */
static void setup(void) {
  if (!(L = luaL_newstate())) abort();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_respparse);
  lua_setfield(L, -2, "goluarun.respparse");
  lua_getglobal(L, "package");
  lua_pushstring(L, GLR_SOURCE_DIR "/lua/?.lua;" GLR_SOURCE_DIR "/spec/?.lua");
  lua_setfield(L, -2, "path");
  lua_settop(L, 0);
  if (luaL_dofile(L, GLR_SOURCE_DIR "/spec/fuzz/resp_diff.lua") != LUA_OK)
    fail("loading resp_diff.lua", lua_tostring(L, -1));
  lua_setfield(L, LUA_REGISTRYINDEX, "resp_diff");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) setup();
  lua_getfield(L, LUA_REGISTRYINDEX, "resp_diff");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) fail("readers differ", lua_tostring(L, -1));
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
