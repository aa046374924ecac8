/* tsan_longjmp.c — lets ThreadSanitizer see the longjmps of Debian's Lua.
**
** Lua raises errors and yields from C with _setjmp/_longjmp. Debian builds
** liblua5.4 with _FORTIFY_SOURCE, so its _longjmp is glibc's
** __longjmp_chk, which TSan does not intercept: TSan sees the _setjmp but
** not the jump, never unwinds its shadow call stack, and after enough Lua
** errors and yields that stack overflows (a SEGV in __tsan_func_entry) or
** its reports show frames that are long gone. Defining __longjmp_chk in the
** executable interposes it for liblua; it jumps with longjmp, which TSan
** intercepts. It drops glibc's check that the jump goes up the stack; Lua
** always jumps to an enclosing luaD_rawrunprotected, so nothing is lost.
**
** Built into every binary only under TSan (CMakeLists.txt links it with
** -Wl,-u,__longjmp_chk); elsewhere this file defines nothing. No state, any
** thread.
*/
#undef _FORTIFY_SOURCE /* here, longjmp must be longjmp, not __longjmp_chk */
#include <setjmp.h>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_LONGJMP_SHIM 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define TSAN_LONGJMP_SHIM 1
#endif

#ifdef TSAN_LONGJMP_SHIM
__attribute__((visibility("default"), noreturn)) void __longjmp_chk(jmp_buf env, int val);
void __longjmp_chk(jmp_buf env, int val) { longjmp(env, val); }
#else
typedef int tsan_longjmp_unused; /* a translation unit needs a declaration */
#endif
