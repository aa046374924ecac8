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

typedef struct lchan lchan_t;
/* lchan_push_new — push a new local channel of capacity cap. */
GLR_INTERNAL void lchan_push_new(lua_State *L, lua_Integer cap);
/* lchan_test — the channel at idx, or NULL if it is not a local channel. */
GLR_INTERNAL lchan_t *lchan_test(lua_State *L, int idx);
/* lchan_offer — send the value at vidx on the channel at cidx without
** waiting, from the P's M (in or outside a goroutine): CHAN_OK (buffered
** or handed to a receiver, which is made runnable), CHAN_WOULDBLOCK (full:
** dropped) or CHAN_CLOSED (dropped). */
GLR_INTERNAL int lchan_offer(lua_State *L, int cidx, int vidx);

#endif
