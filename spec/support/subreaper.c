/* spec-subreaper COMMAND [ARGS...]: run COMMAND (scripts/spec-watchdog.sh
 * and the spec under it) as a child of a process that is the "child
 * subreaper" of everything COMMAND starts (prctl PR_SET_CHILD_SUBREAPER):
 * a daemon a spec started (a double fork, setsid: nginx, redis-server
 * --daemonize, ...) is re-parented here rather than to init, so it stays
 * in reach. When COMMAND exits, every process still under this one is
 * stopped: SIGTERM, up to 2 s to exit, then SIGKILL, until none is left
 * (the children of one that died come here too). Each is named on stderr
 * ("leaked"): a spec should stop what it starts. Only processes descended
 * from COMMAND are ever signalled. Exits with COMMAND's status (128+N if a
 * signal N ended it). SIGTERM/SIGINT/SIGHUP sent here go to COMMAND. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t cmd_pid;

static void forward(int sig) {
  if (cmd_pid > 0) kill(cmd_pid, sig);
}

/* ppid of pid from /proc/pid/stat (the field after the ")" of comm), or -1 */
static long ppid_of(const char *pid, char *comm, size_t commlen) {
  char path[300], buf[512];
  snprintf(path, sizeof path, "/proc/%s/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *open = strchr(buf, '('), *close = strrchr(buf, ')');
  if (!open || !close || close < open) return -1;
  snprintf(comm, commlen, "%.*s", (int)(close - open - 1), open + 1);
  char state;
  long ppid;
  if (sscanf(close + 1, " %c %ld", &state, &ppid) != 2) return -1;
  return ppid;
}

/* signals every child of this process with sig (naming it when `say`);
 * returns how many there were */
static int signal_children(int sig, int say) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  long self = (long)getpid();
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char comm[64];
    if (ppid_of(e->d_name, comm, sizeof comm) != self) continue;
    long pid = strtol(e->d_name, NULL, 10);
    if (say) fprintf(stderr, "spec-subreaper: stopping leaked process %ld (%s)\n", pid, comm);
    kill((pid_t)pid, sig);
    count++;
  }
  closedir(d);
  return count;
}

static void reap_nohang(void) {
  while (waitpid(-1, NULL, WNOHANG) > 0) {}
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: spec-subreaper COMMAND [ARGS...]\n");
    return 2;
  }
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    /* still run the command: only the sweep below loses its reach */
    perror("spec-subreaper: prctl(PR_SET_CHILD_SUBREAPER)");
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("spec-subreaper: fork");
    return 2;
  }
  if (pid == 0) {
    execvp(argv[1], argv + 1);
    fprintf(stderr, "spec-subreaper: %s: %s\n", argv[1], strerror(errno));
    _exit(127);
  }
  cmd_pid = pid;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);

  int status = 0, rc;
  for (;;) { /* wait for COMMAND, reaping adopted orphans as they end */
    pid_t w = waitpid(-1, &status, 0);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) { status = 0; break; }
  }
  rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

  /* the sweep: TERM everything left, KILL what is still there after 2 s;
   * repeat, since a killed process's children are re-parented here */
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL); /* taken by sigtimedwait below */
  double kill_at = now() + 2;
  for (int round = 0; round < 1000; round++) {
    reap_nohang();
    int sig = now() >= kill_at ? SIGKILL : SIGTERM;
    int n = signal_children(sig, round == 0 || sig == SIGKILL);
    if (n == 0) break;
    /* until a child ends; at most 10 ms, since an orphan re-parented here
     * sends nothing, and the KILL deadline comes */
    struct timespec ts = {0, 10 * 1000 * 1000};
    sigtimedwait(&chld, NULL, &ts);
  }
  reap_nohang();
  return rc;
}
