/*
** lschan.h — go.sharedchan (lschan.c): channels usable from every VM, on
** the shared core (runtime/schan.h). Elements are encoded values (vcopy.h)
** stored as words of the core; 0 is never an element. Every function here
** runs on the M holding the VM's P, except lschan_drop (any thread: it is
** the channels' `drop`).
*/
#ifndef GLR_LSCHAN_H
#define GLR_LSCHAN_H

#include <lua.h>

#include "../runtime/schan.h"

/* lschan_test — the channel of a shared-channel handle at idx, or NULL. */
GLR_INTERNAL schan *lschan_test(lua_State *L, int idx);
/* lschan_push — push this VM's handle to c (with a ref of its own). */
GLR_INTERNAL void lschan_push(lua_State *L, schan *c);
/* lschan_open — go.sharedchan, set in the go table on the stack. */
GLR_INTERNAL void lschan_open(lua_State *L);

/* Elements, for go.select (lchan.c): encode the value at idx (raises if it
** cannot be copied); free one (0: nothing); push its value and free it. */
GLR_INTERNAL uint64_t lschan_encode(lua_State *L, int idx, const char *what);
GLR_INTERNAL void lschan_drop(uint64_t elem);
GLR_INTERNAL void lschan_push_value(lua_State *L, uint64_t elem);
/* lschan_wake — wake the owner of a sudog claimed on a shared channel
** (any thread's G: adds a progress token); lschan_settle — by the owner,
** once it runs, removes that token. */
GLR_INTERNAL void lschan_wake(sudog *sg);
GLR_INTERNAL void lschan_settle(sudog *sg);

#endif
