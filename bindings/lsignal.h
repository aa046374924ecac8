/*
** lsignal.h — go.signal and go.signal_stop (floor 3; see lsignal.c). Runs
** on the M holding the VM's P.
*/
#ifndef GLR_LSIGNAL_H
#define GLR_LSIGNAL_H

#include <lua.h>

#include "../runtime/common.h"

/* lsignal_open — sets signal and signal_stop in the go table on the stack
** and the runtime's sig_deliver hook. */
GLR_INTERNAL void lsignal_open(lua_State *L);

#endif
