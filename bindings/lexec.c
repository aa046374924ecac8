/*
** lexec.c — go.exec(argv [, opts]): child processes whose pipes are conns
** and whose exit a goroutine waits for on the netpoller (Go: os/exec).
**
** Invariants (everything on the M holding the VM's P):
**  - Spawning is vfork + execve. Everything the child needs (path, argv,
**    envp, which fd goes where, the LISTEN_PID slot) is built by the parent
**    in a child_spec first; the child makes only async-signal-safe calls
**    (sigaction, dup2, chdir, getpid, sigprocmask, execve, write, _exit)
**    and touches no allocator or lock. The parent blocks every signal
**    around vfork, and the child puts every caught signal back to its
**    default before unblocking, so no runtime handler runs in the child.
**  - Every fd the runtime opens is close-on-exec. The fds meant for the
**    child are first duplicated (F_DUPFD_CLOEXEC) above 3 + nfiles, so
**    the child's dup2 onto 0..2 and 3.. never overwrites a source.
**  - Every fd go.exec opens is in one exec_fds userdata until the end of
**    the call (its __gc closes them if a Lua error unwinds first); the
**    pipe ends handed to conns and the pidfd leave it (slot set to -1).
**  - A process is a table {pid, stdin, stdout, stderr} whose metatable
**    gives wait and kill; it holds a pidfd handle: a conn (class
**    "goluarun.pidfd") so p:wait is an ordinary conn operation on its
**    read side (the lock queue, deadlines, parking on the pollDesc). The
**    pidfd becomes readable when the child exits; waitid(P_PIDFD) reaps
**    it. No thread waits for a child. A handle collected before its
**    child was reaped reaps it if it has already exited.
**  - Needs pidfd_open (Linux 5.3; PIDFD_NONBLOCK 5.10): without it go.exec
**    returns nil, err after killing and reaping the child.
*/
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "args.h"
#include "classes.h"
#include "conn.h"
#include "errstr.h"
#include "goluarun.h"
#include "lexec.h"

extern char **environ;

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define PROC_MT "goluarun.pidfd"
#define PROCESS_MT "goluarun.process"
#define ERR_FINISHED "process already finished"
#define ERR_NOTFOUND "executable file not found in $PATH"
#define MAX_FILES 250

static const char PROC_KEY = 'p';    /* the pidfd handle's class */
static const char PROCESS_KEY = 'P'; /* the process table's metatable */
static const char HANDLE_KEY = 'h';  /* the handle inside the table */

static const char *const STDIO_NAMES[] = {"stdin", "stdout", "stderr"};
enum { STDIO_PIPE, STDIO_INHERIT, STDIO_NULL, STDIO_CONN };

typedef struct proc {
  conn c;     /* fd: the pidfd, on the netpoller */
  pid_t pid;
  bool reaped;
  int status; /* once reaped: the exit code, or -signal */
} proc;

/* exec_fds — the fds this call opened; -1 once given away */
typedef struct exec_fds {
  int n;
  int fd[];
} exec_fds;

/* child_spec — all the child needs, built before vfork */
typedef struct child_spec {
  const char *path;
  char **argv, **envp;
  const char *cwd;   /* or NULL */
  int src[3];        /* fd to become 0, 1, 2; -1: inherit */
  int nfiles;
  int *file_src;     /* fds to become 3 .. 3+nfiles-1 */
  char *listen_pid;  /* the child writes its pid here, or NULL */
  int errfd;         /* exec failure: errno is written here */
} child_spec;

/* ---------- arguments (Lua errors for misuse; nothing opened yet) ---------- */

/* anchor — move the value on top into the anchor table (keeps it alive) */
static void anchor(lua_State *L, int a) {
  lua_rawseti(L, a, (lua_Integer)lua_rawlen(L, a) + 1);
}

static char *anchored_string(lua_State *L, int a, const char *what, lua_Integer i) {
  size_t len;
  if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
    luaL_error(L, "bad argument #1 to 'go.exec' (%s[%d] must be a string)", what, (int)i);
  char *s = (char *)lua_tolstring(L, -1, &len);
  if (strlen(s) != len) luaL_error(L, "bad argument #1 to 'go.exec' (%s[%d] contains a zero byte)", what, (int)i);
  anchor(L, a);
  return s;
}

static void *anchored_array(lua_State *L, int a, size_t n, size_t size) {
  void *v = lua_newuserdatauv(L, n * size, 0);
  memset(v, 0, n * size);
  anchor(L, a);
  return v;
}

static char **build_argv(lua_State *L, int a) {
  luaL_argcheck(L, lua_istable(L, 1), 1, "argv table expected");
  lua_Integer n = luaL_len(L, 1);
  luaL_argcheck(L, n >= 1 && n < INT32_MAX, 1, "argv must name a program");
  char **v = anchored_array(L, a, (size_t)n + 1, sizeof *v);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    v[i - 1] = anchored_string(L, a, "argv", i);
  }
  luaL_argcheck(L, *v[0], 1, "argv[1] must not be empty");
  return v;
}

static void check_opt_keys(lua_State *L) {
  static const char *const keys[] = {"stdin", "stdout", "stderr", "env", "cwd", "files", NULL};
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "bad argument #2 to 'go.exec' (unknown option)");
    const char *k = lua_tostring(L, -1);
    int i = 0;
    while (keys[i] && strcmp(keys[i], k) != 0) i++;
    if (!keys[i]) luaL_error(L, "bad argument #2 to 'go.exec' (unknown option '%s')", k);
  }
}

/* opt — push opts[name] (nil without opts) */
static int opt(lua_State *L, const char *name) {
  if (lua_isnil(L, 2)) return lua_pushnil(L), LUA_TNIL;
  return lua_getfield(L, 2, name);
}

/* stdio_mode — opts.stdin/stdout/stderr; a conn's fd goes to *fd */
static int stdio_mode(lua_State *L, int i, int *fd) {
  int t = opt(L, STDIO_NAMES[i]);
  int mode = -1;
  *fd = -1;
  if (t == LUA_TNIL) mode = STDIO_PIPE;
  else if (t == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    if (strcmp(s, "pipe") == 0) mode = STDIO_PIPE;
    else if (strcmp(s, "inherit") == 0) mode = STDIO_INHERIT;
    else if (strcmp(s, "null") == 0) mode = STDIO_NULL;
  } else if (t == LUA_TUSERDATA) {
    conn *c = conn_check(L, -1);
    if (c->status != CONN_OPEN || c->kind == CONN_LISTENER)
      luaL_error(L, "bad option '%s' to 'go.exec' (an open conn expected)", STDIO_NAMES[i]);
    mode = STDIO_CONN;
    *fd = c->fd;
  }
  if (mode < 0)
    luaL_error(L, "bad option '%s' to 'go.exec' (\"pipe\", \"inherit\", \"null\" or a conn expected)",
               STDIO_NAMES[i]);
  lua_pop(L, 1);
  return mode;
}

/* parse_files — opts.files: listeners; their fds go to s->file_src */
static void parse_files(lua_State *L, int a, child_spec *s) {
  int t = opt(L, "files");
  if (t != LUA_TNIL && t != LUA_TTABLE) luaL_error(L, "bad option 'files' to 'go.exec' (a list of listeners expected)");
  lua_Integer n = t == LUA_TNIL ? 0 : luaL_len(L, -1);
  if (n > MAX_FILES) luaL_error(L, "bad option 'files' to 'go.exec' (more than %d listeners)", MAX_FILES);
  s->nfiles = (int)n;
  s->file_src = anchored_array(L, a, (size_t)n + 1, sizeof *s->file_src);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, -1, i);
    conn *c = lua_isuserdata(L, -1) ? conn_check(L, -1) : NULL;
    if (!c || c->kind != CONN_LISTENER || c->status != CONN_OPEN)
      luaL_error(L, "bad option 'files' to 'go.exec' (files[%d] must be an open listener)", (int)i);
    s->file_src[i - 1] = c->fd;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static bool is_listen_var(const char *e) {
  return strncmp(e, "LISTEN_PID=", 11) == 0 || strncmp(e, "LISTEN_FDS=", 11) == 0 ||
         strncmp(e, "LISTEN_FDNAMES=", 15) == 0;
}

/* env_from_table — opts.env's pairs as "K=V" into v; returns the count */
static int env_from_table(lua_State *L, int a, int t, char **v, int max) {
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) ||
        strchr(lua_tostring(L, -2), '='))
      luaL_error(L, "bad option 'env' to 'go.exec' (names without '=' and string values expected)");
    lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
    if (n < max && !is_listen_var(lua_tostring(L, -1))) v[n++] = anchored_string(L, a, "env", 0);
    else lua_pop(L, 1);
    lua_pop(L, 1);
  }
  return n;
}

static int env_count(lua_State *L, int t) {
  int n = 0;
  if (t) {
    lua_pushnil(L);
    while (lua_next(L, t)) lua_pop(L, 1), n++;
  } else {
    while (environ && environ[n]) n++;
  }
  return n;
}

/* add_listen_vars — LISTEN_FDS, LISTEN_FDNAMES and the LISTEN_PID slot */
static int add_listen_vars(lua_State *L, int a, child_spec *s, char **v, int n) {
  lua_pushfstring(L, "LISTEN_FDS=%d", s->nfiles);
  v[n++] = anchored_string(L, a, "env", 0);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "LISTEN_FDNAMES=");
  for (int i = 0; i < s->nfiles; i++) luaL_addstring(&b, i ? ":unknown" : "unknown");
  luaL_pushresult(&b);
  v[n++] = anchored_string(L, a, "env", 0);
  char *pid = anchored_array(L, a, 32, 1);
  memcpy(pid, "LISTEN_PID=", 11);
  s->listen_pid = pid + 11;
  v[n++] = pid;
  return n;
}

/* build_envp — opts.env (the whole environment) or ours, never our
** LISTEN_* variables, plus the child's own when files are passed */
static char **build_envp(lua_State *L, int a, child_spec *s) {
  int t = opt(L, "env");
  if (t != LUA_TNIL && t != LUA_TTABLE) luaL_error(L, "bad option 'env' to 'go.exec' (a table expected)");
  int ti = t == LUA_TTABLE ? lua_gettop(L) : 0;
  int max = env_count(L, ti);
  char **v = anchored_array(L, a, (size_t)max + 4, sizeof *v);
  int n = 0;
  if (ti) n = env_from_table(L, a, ti, v, max);
  else
    for (int i = 0; i < max; i++)
      if (!is_listen_var(environ[i])) v[n++] = environ[i];
  if (s->nfiles) add_listen_vars(L, a, s, v, n);
  lua_pop(L, 1);
  return v;
}

static bool executable(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* find_program — argv[1] itself if it has a '/', else the first executable
** file of that name in the directories of $PATH; NULL if none */
static const char *find_program(lua_State *L, int a, const char *name) {
  if (strchr(name, '/')) return name;
  const char *path = getenv("PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  for (const char *d = path;; d++) {
    size_t len = strcspn(d, ":");
    if (len) lua_pushlstring(L, d, len);
    else lua_pushliteral(L, ".");
    lua_pushfstring(L, "%s/%s", lua_tostring(L, -1), name);
    lua_remove(L, -2);
    if (executable(lua_tostring(L, -1))) return anchored_string(L, a, "PATH", 0);
    lua_pop(L, 1);
    d += len;
    if (!*d) return NULL;
  }
}

/* ---------- fds (no Lua errors from here to the spawn) ---------- */

static void fds_close(exec_fds *f) {
  for (int i = 0; i < f->n; i++)
    if (f->fd[i] >= 0) close(f->fd[i]), f->fd[i] = -1;
}

static int fds_gc(lua_State *L) {
  fds_close(lua_touserdata(L, 1));
  return 0;
}

static exec_fds *fds_new(lua_State *L, int cap) {
  exec_fds *f = lua_newuserdatauv(L, sizeof *f + (size_t)cap * sizeof(int), 0);
  f->n = 0;
  if (luaL_newmetatable(L, "goluarun.execfds")) {
    lua_pushcfunction(L, fds_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return f;
}

static int fds_add(exec_fds *f, int fd) {
  f->fd[f->n] = fd;
  return f->n++;
}

/* high_dup — a close-on-exec copy of fd at or above min, owned by f */
static int high_dup(exec_fds *f, int fd, int min) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, min);
  if (d < 0) return -errno;
  fds_add(f, d);
  return d;
}

/* open_pipe — a pipe for stdio i: the parent's end (non-blocking) in
** *slot, the child's copied high */
static int open_pipe(exec_fds *f, int i, int min, int *slot) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return -errno;
  fds_add(f, p[0]);
  fds_add(f, p[1]);
  int mine = i == 0 ? p[1] : p[0];
  *slot = f->n - (i == 0 ? 1 : 2);
  if (fcntl(mine, F_SETFL, O_NONBLOCK) < 0) return -errno;
  return high_dup(f, i == 0 ? p[0] : p[1], min);
}

static int open_null(exec_fds *f, int min) {
  int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd < 0) return -errno;
  fds_add(f, fd);
  return high_dup(f, fd, min);
}

/* open_fds — the child's sources for 0..2 and 3.., the pipes' parent ends
** (slot[i], or -1) and the error pipe (*errslot: its read end) */
static int open_fds(exec_fds *f, child_spec *s, const int *mode, const int *connfd, int *slot,
                    int *errslot) {
  int min = 3 + s->nfiles, r = 0;
  for (int i = 0; i < 3 && r >= 0; i++) {
    slot[i] = -1;
    s->src[i] = -1;
    if (mode[i] == STDIO_PIPE) r = open_pipe(f, i, min, &slot[i]);
    else if (mode[i] == STDIO_NULL) r = open_null(f, min);
    else if (mode[i] == STDIO_CONN) r = high_dup(f, connfd[i], min);
    if (r >= 0 && mode[i] != STDIO_INHERIT) s->src[i] = r;
  }
  for (int i = 0; i < s->nfiles && r >= 0; i++) r = s->file_src[i] = high_dup(f, s->file_src[i], min);
  int p[2];
  if (r >= 0 && pipe2(p, O_CLOEXEC) < 0) r = -errno;
  if (r < 0) return r;
  *errslot = fds_add(f, p[0]);
  fds_add(f, p[1]);
  s->errfd = p[1];
  return 0;
}

/* ---------- the child (async-signal-safe calls only) ---------- */

enum { CHILD_EXEC = 1, CHILD_CHDIR, CHILD_DUP }; /* the step that failed */

static void put_pid(char *at, pid_t pid) {
  char tmp[24];
  int n = 0;
  do tmp[n++] = (char)('0' + pid % 10), pid /= 10;
  while (pid > 0);
  while (n) *at++ = tmp[--n];
  *at = 0;
}

static void default_signals(void) {
  for (int sig = 1; sig < NSIG; sig++) {
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) < 0) continue;
    if (sa.sa_handler == SIG_IGN || sa.sa_handler == SIG_DFL) continue;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, NULL);
  }
}

/* child_fail — tell the parent which step failed (CHILD_*) and errno */
static _Noreturn void child_fail(const child_spec *s, int step) {
  int e[2] = {step, errno};
  ssize_t w = write(s->errfd, e, sizeof e);
  (void)w;
  _exit(127);
}

static _Noreturn void child_run(const child_spec *s) {
  default_signals();
  for (int i = 0; i < 3; i++)
    if (s->src[i] >= 0 && dup2(s->src[i], i) < 0) child_fail(s, CHILD_DUP);
  for (int i = 0; i < s->nfiles; i++)
    if (dup2(s->file_src[i], 3 + i) < 0) child_fail(s, CHILD_DUP);
  if (s->cwd && chdir(s->cwd) < 0) child_fail(s, CHILD_CHDIR);
  if (s->listen_pid) put_pid(s->listen_pid, getpid());
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(s->path, s->argv, s->envp);
  child_fail(s, CHILD_EXEC);
}

/* spawn — vfork with every signal blocked: the pid, or -errno */
static pid_t spawn(const child_spec *s) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = vfork();
  if (pid == 0) child_run(s);
  int e = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return pid < 0 ? -e : pid;
}

/* exec_error — the child's errno from the error pipe (and the failed step
** in *step), 0 if it exec'd */
static int exec_error(exec_fds *f, int errslot, int *step) {
  close(f->fd[errslot + 1]);
  f->fd[errslot + 1] = -1;
  int e[2] = {0, 0};
  ssize_t r;
  do r = read(f->fd[errslot], e, sizeof e);
  while (r < 0 && errno == EINTR);
  *step = e[0];
  return r == (ssize_t)sizeof e ? e[1] : 0;
}

static void reap(pid_t pid) {
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
}

/* ---------- the process ---------- */

static int push_status(lua_State *L, const proc *p) {
  if (p->status >= 0) {
    lua_pushinteger(L, p->status);
    return 1;
  }
  lua_pushnil(L);
  lua_pushfstring(L, "signal: %d", -p->status);
  return 2;
}

static int wait_ready(lua_State *L, conn *c, conn_side *s) {
  (void)s;
  proc *p = (proc *)c;
  return p->reaped ? push_status(L, p) : CONN_PENDING;
}

static int wait_try(lua_State *L, conn *c, conn_side *s) {
  (void)s;
  proc *p = (proc *)c;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid((idtype_t)P_PIDFD, (id_t)c->fd, &si, WEXITED | WNOHANG) < 0)
    return errno == EINTR ? CONN_AGAIN : -errno;
  if (si.si_pid == 0) return CONN_WANT_READ;
  p->reaped = true;
  p->status = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
  return push_status(L, p);
}

static int wait_fail(lua_State *L, conn *c, conn_side *s, const char *msg, bool started) {
  (void)c, (void)s, (void)started;
  return conn_push_fail(L, msg);
}

static int64_t wait_deadline(lua_State *L, conn *c) {
  (void)c;
  return lua_isnoneornil(L, 2) ? 0 : glr_deadline(lua_tonumber(L, 2));
}

static const conn_op wait_op = {CONN_DIR_R, GLR_READ, wait_ready, wait_try, wait_fail,
                                wait_deadline};

/* proc_destroyed — collected unwaited: reap the child if it has exited */
static void proc_destroyed(conn *c) {
  proc *p = (proc *)c;
  siginfo_t si;
  if (!p->reaped) waitid((idtype_t)P_PIDFD, (id_t)c->fd, &si, WEXITED | WNOHANG);
  p->reaped = true;
}

static const conn_class proc_class = {"process", NULL, proc_destroyed};

/* proc_arg — the handle of the process table at 1, put at index 1 */
static proc *proc_arg(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_rawgetp(L, 1, &HANDLE_KEY);
  proc *p = class_check(L, -1, &PROC_KEY, PROCESS_MT);
  lua_replace(L, 1);
  return p;
}

static int p_wait(lua_State *L) {
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) args_seconds(L, 2);
  proc_arg(L);
  return conn_op_run(L, &wait_op, 0);
}

static const struct { const char *name; int sig; } SIGNALS[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2},   {"TERM", SIGTERM}, {"PIPE", SIGPIPE},
    {"ALRM", SIGALRM}, {"CONT", SIGCONT},   {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
    {"WINCH", SIGWINCH}, {"ABRT", SIGABRT}, {"SEGV", SIGSEGV}, {NULL, 0}};

/* signal_arg — a signal number or name ("SIGTERM" or "TERM"); SIGTERM */
static int signal_arg(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return SIGTERM;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, idx);
    luaL_argcheck(L, n >= 0 && n < NSIG, idx, "bad signal number");
    return (int)n;
  }
  const char *s = luaL_checkstring(L, idx);
  const char *name = strncmp(s, "SIG", 3) == 0 ? s + 3 : s;
  for (int i = 0; SIGNALS[i].name; i++)
    if (strcmp(SIGNALS[i].name, name) == 0) return SIGNALS[i].sig;
  return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'", s));
}

static int p_kill(lua_State *L) {
  int sig = signal_arg(L, 2);
  proc *p = proc_arg(L);
  if (p->reaped || p->c.status != CONN_OPEN) return conn_push_fail(L, ERR_FINISHED);
  if (syscall(SYS_pidfd_send_signal, p->c.fd, sig, NULL, 0) < 0)
    return conn_push_fail(L, errno == ESRCH ? ERR_FINISHED : errstr_of(errno));
  lua_pushboolean(L, 1);
  return 1;
}

static int p_tostring(lua_State *L) {
  lua_getfield(L, 1, "pid");
  lua_pushfstring(L, "process (pid %d)", (int)lua_tointeger(L, -1));
  return 1;
}

/* ---------- go.exec ---------- */

typedef struct exec_call {
  child_spec *s;
  exec_fds *f;
  int mode[3], connfd[3], slot[3], errslot;
} exec_call;

/* parse — every argument into x->s; Lua errors only here */
static void parse(lua_State *L, exec_call *x, int a) {
  if (!lua_isnil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    check_opt_keys(L);
  }
  child_spec *s = x->s;
  s->argv = build_argv(L, a);
  for (int i = 0; i < 3; i++) x->mode[i] = stdio_mode(L, i, &x->connfd[i]);
  parse_files(L, a, s);
  s->envp = build_envp(L, a, s);
  if (opt(L, "cwd") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "bad option 'cwd' to 'go.exec' (a string expected)");
    s->cwd = anchored_string(L, a, "cwd", 0);
  } else {
    lua_pop(L, 1);
  }
}

static int fail_fds(lua_State *L, exec_call *x, int e, const char *what) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", errstr_of(e), what);
  fds_close(x->f);
  return 2;
}

/* push_process — the process table for pid with its pidfd handle and
** the parent's pipe ends as conns */
static void push_process(lua_State *L, exec_call *x, pid_t pid, int pidfd) {
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, pid);
  lua_setfield(L, -2, "pid");
  int ps = fds_add(x->f, pidfd);
  proc *p = (proc *)conn_new(L, sizeof *p, pidfd, CONN_PROC, &PROC_KEY);
  x->f->fd[ps] = -1;
  p->pid = pid;
  lua_rawsetp(L, -2, &HANDLE_KEY);
  for (int i = 0; i < 3; i++) {
    if (x->slot[i] < 0) continue;
    conn_push(L, x->f->fd[x->slot[i]], CONN_STREAM);
    x->f->fd[x->slot[i]] = -1;
    lua_setfield(L, -2, STDIO_NAMES[i]);
  }
  class_set(L, &PROCESS_KEY);
}

static int go_exec(lua_State *L) {
  lua_settop(L, 2);
  lua_newtable(L); /* 3: anchors every string and array the child uses */
  exec_call x;
  memset(&x, 0, sizeof x);
  x.s = anchored_array(L, 3, 1, sizeof *x.s);
  parse(L, &x, 3);
  x.s->path = find_program(L, 3, x.s->argv[0]);
  if (!x.s->path) {
    lua_pushnil(L);
    lua_pushfstring(L, ERR_NOTFOUND ": %s", x.s->argv[0]);
    return 2;
  }
  x.f = fds_new(L, 12 + x.s->nfiles); /* 4 */
  int e = open_fds(x.f, x.s, x.mode, x.connfd, x.slot, &x.errslot);
  if (e < 0) return fail_fds(L, &x, -e, "exec");
  pid_t pid = spawn(x.s);
  if (pid < 0) return fail_fds(L, &x, -pid, x.s->path);
  int step;
  e = exec_error(x.f, x.errslot, &step);
  if (e) {
    reap(pid);
    return fail_fds(L, &x, e, step == CHILD_CHDIR ? x.s->cwd : step == CHILD_DUP ? "dup2" : x.s->path);
  }
  int pidfd = (int)syscall(SYS_pidfd_open, pid, PIDFD_NONBLOCK);
  if (pidfd < 0) {
    e = errno;
    kill(pid, SIGKILL);
    reap(pid);
    return fail_fds(L, &x, e, "pidfd_open");
  }
  push_process(L, &x, pid, pidfd);
  fds_close(x.f);
  return 1;
}

/* ---------- module ---------- */

void lexec_open(lua_State *L) {
  static const luaL_Reg none[] = {{NULL, NULL}};
  conn_defclass(L, &PROC_KEY, PROC_MT, none, &proc_class, &conn_vcopy_stays);
  static const luaL_Reg methods[] = {{"wait", p_wait}, {"kill", p_kill}, {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__tostring", p_tostring}, {NULL, NULL}};
  class_define(L, &PROCESS_KEY, PROCESS_MT, methods, meta);
  lua_pop(L, 1);
  lua_pushcfunction(L, go_exec);
  lua_setfield(L, -2, "exec");
}
