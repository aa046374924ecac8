/*
** gohandle.h — goroutines of one VM and their handles (floor 2): starting
** a goroutine (go_start, go(fn, ...), glr_go) and waiting for one
** (go.wait), whatever kind of handle it is.
**
** Invariants and thread rules:
** - Everything here runs on the M holding the VM's P (Lua API rules).
** - A handle (metatable goluarun.g) outlives its G: the G keeps the handle
**   on its own stack while it runs and the handle holds the G's thread
**   until it ends; then its results go into the handle (a failed
**   goroutine's error stays on that thread, which is never reused); the
**   handle's state moves once, from running to done or failed, on that P
**   (see gohandle.c).
** - go.wait asks the handle's class how to wait: a handle class stores a
**   lua_CFunction in its metatable (go_setwait). Any class may register one
**   (portable goroutines do, in lspawn.c), so this file knows no module
**   above it. The function must check its own class: Lua code can read and
**   change a metatable, so the slot is only ever as trusted as a Lua value.
*/
#ifndef GLR_GOHANDLE_H
#define GLR_GOHANDLE_H

#include <lua.h>

#include "../runtime/common.h"

/* go_park_waiter — park the running goroutine on the receive queue of
** `waiters` (a chan closed when what it waits for ends: a goroutine, a
** group) for at most timeout seconds (< 0: no limit), cancellable; k, the
** continuation, calls go_waiter_woke first. For go.wait and grp:wait. */
GLR_INTERNAL int go_park_waiter(lua_State *L, struct chan *waiters, double timeout,
                                const char *why, lua_KFunction k);
/* go_waiter_woke — leave the queue; raises "cancelled" if the goroutine's
** group was cancelled meanwhile */
GLR_INTERNAL void go_waiter_woke(lua_State *L);
/* go_start — start fn (at index fnidx) with the nargs values above it as a
** goroutine of this VM; pushes its handle and returns its G. ismain: the script's main
** goroutine (its end ends the program). Go: newproc. */
GLR_INTERNAL struct G *go_start(lua_State *L, int fnidx, int nargs, int ismain);
/* go_run — go.start(fn, ...): as go(fn, ...) without a handle (returns
** nothing; an error is reported as usual). A handle costs ~140 bytes of
** the VM per goroutine; net.serve's connection goroutines need none. */
GLR_INTERNAL int go_run(lua_State *L);
/* go_run_closing — net._serve_start(fn, v, ...): as go_run, and v (which
** must have a __close metamethod; fn's first argument) is closed when the
** goroutine ends, however it ends, with no Lua frame kept for it. */
GLR_INTERNAL int go_run_closing(lua_State *L);
/* go_push_call — push go(fn, ...), the __call of the go table (arg 1 is
** the table); after go_open_handles */
GLR_INTERNAL void go_push_call(lua_State *L);
/* go_wait — go.wait(h [, timeout]): calls the wait function of h's class
** with h at 1 and timeout at 2; raises "goluarun.g expected" for a value
** that is no handle. */
GLR_INTERNAL int go_wait(lua_State *L);
/* go_setwait — go.wait on a userdata whose metatable is on top of the stack
** calls wait (same stack as go_wait; it returns go.wait's results) */
GLR_INTERNAL void go_setwait(lua_State *L, lua_CFunction wait);
/* go_raise_waitself — raises go.wait's error for a goroutine waiting on its
** own handle (of any class: the one spelling) */
GLR_INTERNAL int go_raise_waitself(lua_State *L);
/* go_open_handles — defines the handle class (goluarun.g) in this VM */
GLR_INTERNAL void go_open_handles(lua_State *L);

#endif
