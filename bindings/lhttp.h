/*
** lhttp.h — the `goluarun.httpparse` module: the byte-level loops of
** HTTP/1.1 (RFC 9112) head parsing in C, for goluarun.http's server and
** client (floor 3). The grammar is the LPeg one of lua/goluarun/http.lua,
** which stays the reference: for the same bytes both give the same
** captures, or both no match (spec/httpparse_spec.lua checks it).
** Stateless: every function runs on the M holding the caller's P and
** touches only its arguments.
*/
#ifndef GLR_LHTTP_H
#define GLR_LHTTP_H

#include <lua.h>

#include "../runtime/common.h"

/* luaopen_httpparse — the httpparse table (main.c registers it in
** package.preload as "goluarun.httpparse") */
GLR_INTERNAL int luaopen_httpparse(lua_State *L);

#endif
