/*
** ldbhook.h — debug.sethook and debug.gethook as the standard library's,
** over the runtime's hook (preempt_user_hook), so preemption never changes
** what a user's hook sees or what debug.gethook returns (floor 3).
** Runs on the M holding the VM's P.
*/
#ifndef GLR_LDBHOOK_H
#define GLR_LDBHOOK_H

#include <lua.h>

#include "../runtime/common.h"

/* ldbhook_open — replace sethook and gethook in the VM's debug table
** (package.loaded.debug, after luaL_openlibs) */
GLR_INTERNAL void ldbhook_open(lua_State *L);

#endif
