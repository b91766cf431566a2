#ifndef DWELL_SHIM_H
#define DWELL_SHIM_H

#include <stddef.h>
#include <getopt.h>
#include <sys/types.h>

// Opens a non-blocking, close-on-exec TCP socket bound to host:port and listening.
// With reuse_port set, SO_REUSEPORT lets several sockets share the address.
// Returns the descriptor, or -errno on failure; *failed_call names the call that failed.
int dwell_listen_tcp(const char *host, int port, int backlog, int reuse_port,
                     const char **failed_call);

// Returns the local port of a bound socket, or -errno.
int dwell_local_port(int fd);

// Clears or sets FD_CLOEXEC; returns 0 or -errno.
int dwell_set_cloexec(int fd, int on);

// The wait(2) status macros, which Swift does not import.
int dwell_wifexited(int status);
int dwell_wexitstatus(int status);
int dwell_wifsignaled(int status);
int dwell_wtermsig(int status);

// Opens a pipe whose ends are close-on-exec and non-blocking; returns 0 or -errno.
int dwell_pipe(int fds[2]);

// Writes the whole buffer, retrying on EINTR and short writes; returns 0 or -errno.
int dwell_write_all(int fd, const void *buf, size_t len);

// Sets SIGPIPE to SIG_IGN, so a write to a closed socket returns EPIPE instead of
// killing the process.
void dwell_ignore_sigpipe(void);

// Unblocks every signal. A process inherits its parent's mask, and a parent
// that blocked SIGTERM or SIGHUP would otherwise leave Dwell deaf to them.
void dwell_unblock_all_signals(void);

#endif
