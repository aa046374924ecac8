/*
** lspawn.h — go.spawn and go.spawn_on: portable goroutines (floor 3; see
** lspawn.c for the record's invariants). Runs on the M holding the VM's P.
*/
#ifndef GLR_LSPAWN_H
#define GLR_LSPAWN_H

#include <lua.h>

#include "../runtime/common.h"

/* lspawn_open — registers go.spawn and go.spawn_on in the go table on
** the stack, the portable handle class (go.wait on it: through its class,
** gohandle.h) and the runtime's start_portable hook. */
GLR_INTERNAL void lspawn_open(lua_State *L);

#endif
