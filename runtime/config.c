/* config.c — see config.h. */
#include "config.h"

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
}

int config_nprocs(const rt_config *c) {
  if (c->nprocs > 0) return c->nprocs;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > CONFIG_MAXPROCS ? CONFIG_MAXPROCS : (int)n;
}
