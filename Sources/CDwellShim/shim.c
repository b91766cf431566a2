#define _GNU_SOURCE
#include "dwell_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int dwell_listen_tcp(const char *host, int port, int backlog, int reuse_port,
                     const char **failed_call) {
    struct addrinfo hints, *res = NULL;
    char service[16];
    int fd, rc, one = 1;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof service, "%d", port);
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        *failed_call = "getaddrinfo";
        return rc == EAI_SYSTEM ? -errno : -EINVAL;
    }

    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        *failed_call = "socket";
        freeaddrinfo(res);
        return rc;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        *failed_call = "setsockopt(SO_REUSEPORT)";
        goto fail;
    }
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
        *failed_call = "bind";
        goto fail;
    }
    if (listen(fd, backlog) != 0) {
        *failed_call = "listen";
        goto fail;
    }
    freeaddrinfo(res);
    return fd;

fail:
    rc = -errno;
    close(fd);
    freeaddrinfo(res);
    return rc;
}

int dwell_local_port(int fd) {
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) return -errno;
    if (addr.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&addr)->sin_port);
    if (addr.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    return -EAFNOSUPPORT;
}

int dwell_set_cloexec(int fd, int on) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -errno;
    flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
    return fcntl(fd, F_SETFD, flags) == 0 ? 0 : -errno;
}

int dwell_wifexited(int status) { return WIFEXITED(status); }
int dwell_wexitstatus(int status) { return WEXITSTATUS(status); }
int dwell_wifsignaled(int status) { return WIFSIGNALED(status); }
int dwell_wtermsig(int status) { return WTERMSIG(status); }

int dwell_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0 ? 0 : -errno;
}

int dwell_write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void dwell_ignore_sigpipe(void) {
    signal(SIGPIPE, SIG_IGN);
}

void dwell_unblock_all_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}
