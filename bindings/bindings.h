/*
** bindings.h — internal glue between the C Lua modules of goluarun (go,
** net, the coroutine replacement) and the executable. Not installed.
** Every function here runs on the M holding the VM's P.
*/
#ifndef GLR_BINDINGS_H
#define GLR_BINDINGS_H

#include <string.h>
#include <unistd.h>

#include <lua.h>

#include "../runtime/common.h"
#include "classes.h"

GLR_INTERNAL int luaopen_go(lua_State *L);
GLR_INTERNAL int luaopen_net(lua_State *L);
/* glr_open_coroutine — replaces the coroutine library (see lcoro.c). */
GLR_INTERNAL int glr_open_coroutine(lua_State *L);
/* glr_open_stdio — replaces io.read, io.lines, file:read, file:lines,
** os.execute and popen's close with versions that park (see lstdio.c). */
GLR_INTERNAL void glr_open_stdio(lua_State *L);
/* net.lookup and name resolution on the worker pool (lookup.c) */
GLR_INTERNAL int net_lookup(lua_State *L);
/* park until host is resolved; k then finds the job at the stack top */
GLR_INTERNAL int net_lookup_start(lua_State *L, const char *host, lua_KContext ctx,
                                  lua_KFunction k);
/* push the address list (or nil, err) of the job at idx */
GLR_INTERNAL int net_lookup_result(lua_State *L, int idx);
/* glr_open_shared — sets field "shared" (go.shared) of the table on top. */
GLR_INTERNAL void glr_open_shared(lua_State *L);
/* glr_cannot_block_error — the Lua error for a park that cannot happen. */
GLR_INTERNAL int glr_cannot_block_error(lua_State *L, const char *what);

#endif
