/*
** lookup.h — name resolution on the worker pool: net.lookup and host names in
** dial and listen (floor 3).
** Runs on the M holding the VM's P.
*/
#ifndef GLR_LOOKUP_H
#define GLR_LOOKUP_H

#include <lua.h>

#include "../runtime/common.h"

/* net_lookup — net.lookup(host) */
GLR_INTERNAL int net_lookup(lua_State *L);
/* net_lookup_start — park until host is resolved; k then finds the job at
** the stack top */
GLR_INTERNAL int net_lookup_start(lua_State *L, const char *host, lua_KContext ctx,
                                  lua_KFunction k);
/* net_lookup_result — push the address list (or nil, err) of the job at idx */
GLR_INTERNAL int net_lookup_result(lua_State *L, int idx);

#endif
