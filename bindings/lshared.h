/*
** lshared.h — go.shared: dictionaries shared by every VM (floor 3).
** Runs on the M holding the VM's P.
*/
#ifndef GLR_LSHARED_H
#define GLR_LSHARED_H

#include <lua.h>

#include "../runtime/common.h"

/* lshared_open — sets field "shared" of the table on top */
GLR_INTERNAL void lshared_open(lua_State *L);

#endif
