/*
** lnet.h — the `net` module: dial, listen, listeners (floor 3).
** Runs on the M holding the VM's P.
*/
#ifndef GLR_LNET_H
#define GLR_LNET_H

#include <lua.h>

#include "../runtime/common.h"

/* luaopen_net — the net table (conns: conn.h, UDP: ludp.h) */
GLR_INTERNAL int luaopen_net(lua_State *L);

#endif
