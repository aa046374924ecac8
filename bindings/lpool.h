/*
** lpool.h — the C half of net.pool (floor 3): an idle set, the mechanism
** under lua/goluarun/pool.lua's policy. Runs on the M holding the VM's P.
*/
#ifndef GLR_LPOOL_H
#define GLR_LPOOL_H

#include <lua.h>

#include "../runtime/common.h"

/* lpool_open — sets fields "_idleset" and "_nopreempt" of the table on top */
GLR_INTERNAL void lpool_open(lua_State *L);

#endif
