/*
** lcoro.h — the replacement `coroutine` library, which forwards runtime parks
** through user coroutines (floor 3).
** Runs on the M holding the VM's P.
*/
#ifndef GLR_LCORO_H
#define GLR_LCORO_H

#include <lua.h>

#include "../runtime/common.h"

/* lcoro_open — replaces the coroutine library in the VM of L */
GLR_INTERNAL int lcoro_open(lua_State *L);

#endif
