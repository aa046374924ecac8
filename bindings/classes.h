/*
** classes.h — userdata classes with fast checks, and weak tables (floor 1:
** includes nothing from bindings/ but goluarun.h's floor).
**
** A class's metatable is registered under its name (so luaL_checkudata
** still works) and under a static key, which is much cheaper to look up
** than a string on hot paths. Every function runs on the M holding the
** VM's P, like any Lua API call.
*/
#ifndef GLR_CLASSES_H
#define GLR_CLASSES_H

#include <lauxlib.h>
#include <lua.h>

#include "../runtime/common.h"

/* class_new — a new metatable `name`, also under key; left on the stack */
GLR_INTERNAL void class_new(lua_State *L, const void *key, const char *name);
/* class_define — class_new + __index = methods + metamethods; leaves the
** metatable on the stack. Each method gets the metatable as upvalue 1. */
GLR_INTERNAL void class_define(lua_State *L, const void *key, const char *name,
                               const luaL_Reg *methods, const luaL_Reg *metamethods);
/* class_set — set the metatable of the value on top to key's class */
GLR_INTERNAL void class_set(lua_State *L, const void *key);
/* class_test — the userdata at idx if it is of key's class, else NULL */
GLR_INTERNAL void *class_test(lua_State *L, int idx, const void *key);
/* class_check — as class_test, but raises "tname expected" */
GLR_INTERNAL void *class_check(lua_State *L, int idx, const void *key, const char *tname);
/* class_method — class_check for a method registered by class_define:
** compares the metatable with the method's upvalue 1, no registry lookup
** (a hot-path check: go.chan's send/recv spent 18% of a ping-pong in
** class_check) */
GLR_INTERNAL void *class_method(lua_State *L, int idx, const void *key, const char *tname);
/* class_weaktable — push a new table with weak keys ("k") or values ("v") */
GLR_INTERNAL void class_weaktable(lua_State *L, const char *mode);

#endif
