/* config.c — see config.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void maxprocs_from_env(rt_config *c, const char *progname) {
  const char *e = getenv("GOLUA_MAXPROCS");
  if (!e || !*e) return;
  int n = atoi(e);
  if (n >= 1 && n <= CONFIG_MAXPROCS) c->nprocs = n;
  else fprintf(stderr, "%s: GOLUA_MAXPROCS must be 1..256; ignored\n", progname);
}

static void debug_from_env(rt_config *c) {
  const char *d = getenv("GOLUA_DEBUG");
  const char *t = d ? strstr(d, "schedtrace=") : NULL;
  if (t) c->schedtrace_ms = atoi(t + strlen("schedtrace="));
  if (c->schedtrace_ms < 0) c->schedtrace_ms = 0;
  const char *w = d ? strstr(d, "mcapwait=") : NULL;
  if (w && atoi(w + strlen("mcapwait=")) > 0) c->mcapwait_ms = atoi(w + strlen("mcapwait="));
}

static void mock_from_env(rt_config *c) {
  const char *m = getenv("GOLUA_MOCKEAGAIN");
  if (!m) return;
  c->mock_eagain_r = strchr(m, 'r') != NULL;
  c->mock_eagain_w = strchr(m, 'w') != NULL;
}

int64_t config_parse_bytes(const char *s) {
  static const struct { const char *suffix; int shift; } units[] = {
      {"", 0}, {"B", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
  if (*s < '0' || *s > '9') return -1;
  char *end;
  errno = 0;
  unsigned long long n = strtoull(s, &end, 10);
  if (errno || n == 0) return -1;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(end, units[i].suffix) != 0) continue;
    if (n > (unsigned long long)INT64_MAX >> units[i].shift) return -1;
    return (int64_t)(n << units[i].shift);
  }
  return -1;
}

static void memlimit_from_env(rt_config *c, const char *progname) {
  const char *e = getenv("GOLUA_MEMLIMIT");
  if (!e || !*e || strcmp(e, "off") == 0) return;
  int64_t n = config_parse_bytes(e);
  if (n > 0) c->memlimit = n;
  else fprintf(stderr, "%s: GOLUA_MEMLIMIT=%s: must be a number of bytes with an optional "
               "KiB/MiB/GiB/TiB suffix, or off; ignored\n", progname, e);
}

/* parse_seed_rate — "SEED" or "SEED:RATE" (SEED a decimal integer, RATE a
** fraction in (0, 1]); the rate is def when absent (def < 0: required) */
static bool parse_seed_rate(const char *s, double def, uint64_t *seed, uint32_t *ppm) {
  if (*s < '0' || *s > '9') return false;
  char *end;
  errno = 0;
  unsigned long long n = strtoull(s, &end, 10);
  if (errno) return false;
  double rate = def;
  if (*end == ':') {
    const char *r = end + 1;
    if ((*r < '0' || *r > '9') && *r != '.') return false;
    rate = strtod(r, &end);
  }
  if (*end || !(rate > 0 && rate <= 1)) return false;
  *seed = n;
  *ppm = (uint32_t)(rate * 1e6 + 0.5);
  if (*ppm == 0) *ppm = 1;
  return true;
}

static void chaos_from_env(rt_config *c, const char *progname) {
  const char *e = getenv("GOLUA_CHAOS");
  if (!e || !*e || strcmp(e, "off") == 0) return;
  if (!parse_seed_rate(e, CONFIG_CHAOS_RATE, &c->chaos_seed, &c->chaos_ppm))
    fprintf(stderr, "%s: GOLUA_CHAOS=%s: must be SEED[:RATE] (an integer, and a "
            "fraction in (0, 1]), or off; ignored\n", progname, e);
}

static void allocfail_from_env(rt_config *c, const char *progname) {
  const char *e = getenv("GOLUA_ALLOCFAIL");
  if (!e || !*e || strcmp(e, "off") == 0) return;
  bool ok;
  if (strchr(e, ':')) {
    ok = parse_seed_rate(e, -1, &c->allocfail_seed, &c->allocfail_ppm);
  } else {
    char *end;
    errno = 0;
    long long n = strtoll(e, &end, 10);
    ok = *e >= '0' && *e <= '9' && !errno && !*end && n > 0;
    if (ok) c->allocfail_nth = n;
  }
  if (!ok)
    fprintf(stderr, "%s: GOLUA_ALLOCFAIL=%s: must be N (a count > 0) or SEED:RATE (an "
            "integer, and a fraction in (0, 1]), or off; ignored\n", progname, e);
}

/* listen_from_env — systemd's LISTEN_FDS, if LISTEN_PID names us: the fds
** 3 .. 3+n-1 become close-on-exec (a child gets them only through
** go.exec's files), and the three variables are removed from the
** environment, so no child inherits them by accident */
static void listen_from_env(rt_config *c, const char *progname) {
  const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
  if (pid && fds && strtol(pid, NULL, 10) == (long)getpid()) {
    long n = strtol(fds, NULL, 10);
    if (n < 0 || n > CONFIG_MAXLISTENFDS) {
      fprintf(stderr, "%s: LISTEN_FDS=%s: must be 0..%d; ignored\n", progname, fds,
              CONFIG_MAXLISTENFDS);
      n = 0;
    }
    for (int fd = 3; fd < 3 + n; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
    c->listen_fds = (int)n;
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
}

void config_from_env(rt_config *c, const char *progname, bool skip_maxprocs) {
  *c = RT_CONFIG_DEFAULTS;
  c->progname = progname;
  if (!skip_maxprocs) maxprocs_from_env(c, progname);
  const char *s = getenv("GOLUA_MAXTHREADS");
  if (s) c->maxthreads = atoi(s);
  const char *off = getenv("GOLUA_NOPREEMPT");
  c->preempt = !(off && *off && strcmp(off, "0") != 0);
  const char *g = getenv("GOLUA_GRACE");
  if (g) c->grace = atof(g);
  debug_from_env(c);
  mock_from_env(c);
  memlimit_from_env(c, progname);
  chaos_from_env(c, progname);
  allocfail_from_env(c, progname);
  listen_from_env(c, progname);
  const char *dbg = getenv("GOLUA_DEBUG_ADDR");
  c->debug_addr = dbg && *dbg ? dbg : NULL;
}

int config_nprocs(const rt_config *c) {
  if (c->nprocs > 0) return c->nprocs;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > CONFIG_MAXPROCS ? CONFIG_MAXPROCS : (int)n;
}
