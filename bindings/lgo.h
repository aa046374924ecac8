/*
** lgo.h — the `go` module (floor 4: assembles the modules below it).
** Runs on the M holding the VM's P.
*/
#ifndef GLR_LGO_H
#define GLR_LGO_H

#include <lua.h>

#include "../runtime/common.h"

/* luaopen_go — the go table; also replaces os.exit (see lgo.c) */
GLR_INTERNAL int luaopen_go(lua_State *L);

#endif
