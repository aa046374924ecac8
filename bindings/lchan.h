/*
** lchan.h — go.chan (local channels), go.select (the one select, over any
** mix of local and shared channels) and go.after; see lchan.c. Runs on the
** M holding the VM's P.
*/
#ifndef GLR_LCHAN_H
#define GLR_LCHAN_H

#include <lua.h>

#include "../runtime/common.h"

/* lchan_open — defines the channel class and sets chan, select and after
** in the go table on the top of the stack. */
GLR_INTERNAL void lchan_open(lua_State *L);

#endif
