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

enum conn_kind { CONN_TCP = 1, CONN_UNIX, CONN_STREAM, CONN_UDP, CONN_LISTENER };

GLR_INTERNAL int luaopen_go(lua_State *L);
GLR_INTERNAL int luaopen_net(lua_State *L);
/* glr_open_coroutine — replaces the coroutine library (see lcoro.c). */
GLR_INTERNAL int glr_open_coroutine(lua_State *L);
/* glr_open_stdio — replaces io.read, io.lines, file:read, file:lines,
** os.execute and popen's close with versions that park (see lstdio.c). */
GLR_INTERNAL void glr_open_stdio(lua_State *L);
/* net_conn_push — push a conn userdata owning fd. */
GLR_INTERNAL void net_conn_push(lua_State *L, int fd, int kind);
/* net.lookup and name resolution on the worker pool (lookup.c) */
GLR_INTERNAL int net_lookup(lua_State *L);
/* park until host is resolved; k then finds the job at the stack top */
GLR_INTERNAL int net_lookup_start(lua_State *L, const char *host, lua_KContext ctx,
                                  lua_KFunction k);
/* push the address list (or nil, err) of the job at idx */
GLR_INTERNAL int net_lookup_result(lua_State *L, int idx);
/* glr_open_shared — sets field "shared" (go.shared) of the table on top. */
GLR_INTERNAL void glr_open_shared(lua_State *L);
/* go.spawn (lspawn.c): registers go.spawn in the go table on the stack and
** the runtime's start_portable hook */
GLR_INTERNAL void glr_open_spawn(lua_State *L);
GLR_INTERNAL int portable_is_handle(lua_State *L, int idx);
GLR_INTERNAL int portable_wait(lua_State *L);
/* moving conns between VMs (lnet.c): is it a net object; check or do the
** move (pushes the buffered bytes); re-create it in the receiving VM */
GLR_INTERNAL int net_conn_is(lua_State *L, int idx);
GLR_INTERNAL const char *net_conn_detach(lua_State *L, int idx, bool commit, int *fd,
                                         int *kind);
GLR_INTERNAL void net_conn_push_buffered(lua_State *L, int fd, int kind, const char *data,
                                         size_t len);
/* shared channels: lschan.h (included here only until vcopy.c finds them
** through a class hook instead of lschan_test / lschan_push) */
#include "lschan.h"
/* glr_cannot_block_error — the Lua error for a park that cannot happen. */
GLR_INTERNAL int glr_cannot_block_error(lua_State *L, const char *what);
/* go_start — start fn (at index fnidx) with n args above it as a goroutine;
** pushes its handle. */
GLR_INTERNAL void go_start(lua_State *L, int fnidx, int nargs, int ismain);

/* Fast class checks: a class's metatable is registered under its name (so
** luaL_checkudata still works) and under a static key, which is much cheaper
** to look up than a string on hot paths. */
GLR_INTERNAL void glr_newclass(lua_State *L, const void *key, const char *name);
/* glr_weaktable — push a new table with weak keys ("k") or values ("v") */
GLR_INTERNAL void glr_weaktable(lua_State *L, const char *mode);
/* glr_defclass — glr_newclass + __index = methods + metamethods; leaves the
** metatable on the stack. */
struct luaL_Reg;
GLR_INTERNAL void glr_defclass(lua_State *L, const void *key, const char *name,
                               const struct luaL_Reg *methods,
                               const struct luaL_Reg *metamethods);
GLR_INTERNAL void glr_setclass(lua_State *L, const void *key);
GLR_INTERNAL void *glr_testclass(lua_State *L, int idx, const void *key);
GLR_INTERNAL void *glr_checkclass(lua_State *L, int idx, const void *key, const char *tname);

#endif
