/* The real node's sandbox ("pause") container: it holds a pod's namespaces and does
 * nothing else. As PID 1 of its namespace it gets no default signal actions, so it
 * installs its own: SIGTERM and SIGINT end it at once, SIGCHLD reaps whatever was
 * re-parented to it (a pod that shares its PID namespace). */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) { _exit(sig == SIGTERM ? 0 : 128 + sig); }

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction stop = {.sa_handler = on_stop};
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  sigaction(SIGTERM, &stop, NULL);
  sigaction(SIGINT, &stop, NULL);
  sigaction(SIGCHLD, &child, NULL);
  for (;;)
    pause();
}
