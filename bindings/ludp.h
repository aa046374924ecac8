/*
** ludp.h — UDP sockets (net.udp), on the conn core (conn.h). Owner M only.
*/
#ifndef GLR_LUDP_H
#define GLR_LUDP_H

#include <lua.h>

#include "../runtime/common.h"

/* ludp_open — defines the UDP socket class. */
GLR_INTERNAL void ludp_open(lua_State *L);
/* ludp_new — net.udp(addr): a UDP socket bound to addr. */
GLR_INTERNAL int ludp_new(lua_State *L);

#endif
