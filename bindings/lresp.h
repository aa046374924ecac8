/*
** lresp.h — the `goluarun.respparse` module: the RESP2 reader's byte loop in
** C (floor 3). resp.lua's reader calls it to decode, in one call, every
** complete top-level value already in its buffer; the Lua parser in
** resp.lua stays the reference and decides everything this one does not
** take (see lresp.c: "defer").
** Stateless apart from a config userdata (limits and the two null
** sentinels) made per reader; every function runs on the M holding the
** caller's P and touches only its arguments.
*/
#ifndef GLR_LRESP_H
#define GLR_LRESP_H

#include <lua.h>

#include "../runtime/common.h"

/* luaopen_respparse — the respparse table (main.c registers it in
** package.preload as "goluarun.respparse") */
GLR_INTERNAL int luaopen_respparse(lua_State *L);

#endif
