/*
** lgroup.h — go.group, the cancellation group (floor 3; see lgroup.c and
** runtime/group.h). Runs on the M holding the VM's P; a group and its
** members belong to one VM.
*/
#ifndef GLR_LGROUP_H
#define GLR_LGROUP_H

#include <lua.h>

#include "../runtime/common.h"

/* lgroup_open — sets `group` in the go table on the stack and defines the
** group class. */
GLR_INTERNAL void lgroup_open(lua_State *L);

#endif
