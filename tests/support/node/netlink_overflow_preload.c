/*
 * Makes a umockdev uevent monitor report overflow the way a kernel netlink
 * socket does: the first read after events were dropped fails with ENOBUFS.
 *
 * umockdev replaces the netlink socket with a unix socket bound at
 * $UMOCKDEV_DIR/event<N>. When the simulated node has to drop an event for a
 * monitor that stopped reading (monitor_pacing.cpp), it leaves the mark
 * $UMOCKDEV_DIR/overflowed-event<N>. This library, preloaded into the daemon
 * before umockdev's own preload, turns the mark into one ENOBUFS from
 * recvmsg() on that socket and removes it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef ssize_t (*recvmsg_fn)(int, struct msghdr *, int);

static int take_overflow_mark(int fd)
{
    struct sockaddr_un address;
    socklen_t length = sizeof(address);
    if (getsockname(fd, (struct sockaddr *)&address, &length) != 0 || address.sun_family != AF_UNIX)
        return 0;
    const char *name = strrchr(address.sun_path, '/');
    if (!name || strncmp(name + 1, "event", 5) != 0)
        return 0;
    char mark[sizeof(address.sun_path) + 16];
    snprintf(mark, sizeof(mark), "%.*s/overflowed-%s", (int)(name - address.sun_path), address.sun_path, name + 1);
    return unlink(mark) == 0;
}

static recvmsg_fn next;

/* Resolved when the library is loaded, before the daemon starts threads:
 * gRPC's threads call recvmsg() too, and a lookup on the first call would be
 * a data race between them (ThreadSanitizer reports it). */
__attribute__((constructor)) static void resolve_next(void)
{
    /* ISO C has no cast from object to function pointer; copy the bits. */
    void *symbol = dlsym(RTLD_NEXT, "recvmsg");
    memcpy(&next, &symbol, sizeof(next));
}

ssize_t recvmsg(int fd, struct msghdr *message, int flags)
{
    if (take_overflow_mark(fd)) {
        errno = ENOBUFS;
        return -1;
    }
    return next(fd, message, flags);
}
