/*
** lcodec.h — the `goluarun.codec` module: byte helpers over OpenSSL's
** libcrypto for protocol libraries (floor 3): sha1, base64, random bytes,
** and the WebSocket XOR mask.
** Stateless: every function runs on the M holding the caller's P and
** touches only its arguments (RAND_bytes is thread-safe in OpenSSL 3).
*/
#ifndef GLR_LCODEC_H
#define GLR_LCODEC_H

#include <lua.h>

#include "../runtime/common.h"

/* luaopen_codec — the codec table (main.c registers it in package.preload
** as "goluarun.codec") */
GLR_INTERNAL int luaopen_codec(lua_State *L);

#endif
