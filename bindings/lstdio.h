/*
** lstdio.h — io.read, io.lines, file:read, file:lines, os.execute and popen's
** close, parking only the calling goroutine (floor 3).
** Runs on the M holding the VM's P.
*/
#ifndef GLR_LSTDIO_H
#define GLR_LSTDIO_H

#include <lua.h>

#include "../runtime/common.h"

/* lstdio_open — installs them in the VM of L */
GLR_INTERNAL void lstdio_open(lua_State *L);

#endif
