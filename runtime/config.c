/* config.c — see config.h. */
#include "config.h"

#include <errno.h>
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

void config_from_env(rt_config *c, const char *progname, bool skip_maxprocs) {
  *c = RT_CONFIG_DEFAULTS;
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
}

int config_nprocs(const rt_config *c) {
  if (c->nprocs > 0) return c->nprocs;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > CONFIG_MAXPROCS ? CONFIG_MAXPROCS : (int)n;
}
