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
/* shared channels (lschan.c): the channel of a handle at idx (or NULL);
** push a handle to c in this VM (with a ref of its own) */
struct schan;
struct swaiter;
GLR_INTERNAL struct schan *lschan_test(lua_State *L, int idx);
GLR_INTERNAL void lschan_push(lua_State *L, struct schan *c);
/* go.sharedchan, registered in the go table on the stack */
GLR_INTERNAL void glr_open_sharedchan(lua_State *L);
/* for go.select: encode the value at idx as a channel element (raises if it
** cannot be copied); free an element; push an element's value (and free
** it); wake a claimed waiter's goroutine; undo its progress token */
GLR_INTERNAL void *lschan_encode(lua_State *L, int idx, const char *what);
GLR_INTERNAL void lschan_drop(void *v);
GLR_INTERNAL void lschan_push_value(lua_State *L, void *v);
GLR_INTERNAL void lschan_wake(struct swaiter *w);
GLR_INTERNAL void lschan_settle(struct swaiter *w);
/* glr_cannot_block_error — the Lua error for a park that cannot happen. */
GLR_INTERNAL int glr_cannot_block_error(lua_State *L, const char *what);

#endif
