/*
** lexec.h — go.exec: child processes (floor 3; see lexec.c for the
** invariants). Runs on the M holding the VM's P.
*/
#ifndef GLR_LEXEC_H
#define GLR_LEXEC_H

#include <lua.h>

#include "../runtime/common.h"

/* lexec_open — registers go.exec in the go table on the stack and the
** process classes (the table's methods wait and kill, the pidfd handle). */
GLR_INTERNAL void lexec_open(lua_State *L);

#endif
