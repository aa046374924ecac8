/*
** lprof.h — (floor 3) the C half of goluarun.pprof (lua/goluarun/pprof.lua): the
** profiler's start and stop (runtime/prof.h) and the goroutine list of the
** calling P, as the module "goluarun.pprof.core" (package.preload).
**
** Invariants: everything runs on the M holding the calling VM's P. The
** goroutine list walks only that P's goroutines (a P's VM is walked only
** by its own M); pprof.lua asks every other P through go.spawn_on.
*/
#ifndef GLR_LPROF_H
#define GLR_LPROF_H

#include <lua.h>

#include "../runtime/sched.h"

/* lprof_open — register package.preload["goluarun.pprof.core"] in L's VM. */
GLR_INTERNAL void lprof_open(lua_State *L);
/* lprof_write_svg — end the runtime-wide profile (rt->prof_run_hz) and
** write it as an SVG flame graph to path, rendered by goluarun.pprof in L
** (a VM's main thread, outside any goroutine: main.c, after rt_run).
** Returns 0, or -1 after printing why on stderr. */
GLR_INTERNAL int lprof_write_svg(rt *r, lua_State *L, const char *path);

#endif
