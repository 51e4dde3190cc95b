/*
 * Makes a umockdev uevent monitor report overflow the way a kernel netlink
 * socket does: the socket becomes readable at once, and the first read after
 * events were dropped fails with ENOBUFS.
 *
 * umockdev replaces the netlink socket with a unix socket bound at
 * $UMOCKDEV_DIR/event<N>. When the simulated node has dropped an event for a
 * monitor that stopped reading (monitor_pacing.cpp), it leaves a mark beside
 * that socket and then sends it a wake datagram (netlink_overflow.h). This
 * library, preloaded into the daemon before umockdev's own preload, turns the
 * mark into one ENOBUFS from recvmsg() on that socket and removes it, and
 * takes every wake datagram out of the stream.
 */
#define _GNU_SOURCE
#include "netlink_overflow.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef ssize_t (*recvmsg_fn)(int, struct msghdr *, int);

/* Whether `fd` is a umockdev uevent socket; if so, `mark` receives the path
 * of its overflow mark. */
static int overflow_mark_of(int fd, char *mark, size_t size)
{
    struct sockaddr_un address;
    socklen_t length = sizeof(address);
    if (getsockname(fd, (struct sockaddr *)&address, &length) != 0 || address.sun_family != AF_UNIX)
        return 0;
    const char *name = strrchr(address.sun_path, '/');
    if (!name || strncmp(name + 1, "event", 5) != 0)
        return 0;
    snprintf(mark, size, "%.*s/" KVGPU_OVERFLOW_MARK_PREFIX "%s", (int)(name - address.sun_path), address.sun_path,
             name + 1);
    return 1;
}

static int is_wake(const struct msghdr *message, ssize_t received)
{
    const size_t length = sizeof(KVGPU_OVERFLOW_WAKE) - 1;
    return received == (ssize_t)length && message->msg_iovlen > 0 && message->msg_iov[0].iov_len >= length &&
           memcmp(message->msg_iov[0].iov_base, KVGPU_OVERFLOW_WAKE, length) == 0;
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
    struct sockaddr_un unused;
    char mark[sizeof(unused.sun_path) + sizeof(KVGPU_OVERFLOW_MARK_PREFIX)];
    if (!overflow_mark_of(fd, mark, sizeof(mark)))
        return next(fd, message, flags);
    for (;;) {
        if (unlink(mark) == 0) {
            errno = ENOBUFS;
            return -1;
        }
        ssize_t received = next(fd, message, flags);
        if (received < 0 || !is_wake(message, received))
            return received;
        if (flags & MSG_PEEK) {
            /* Only looked at: take it off the queue before reading on. */
            char byte;
            struct iovec vector = {&byte, sizeof(byte)};
            struct msghdr discard = {.msg_iov = &vector, .msg_iovlen = 1};
            next(fd, &discard, MSG_DONTWAIT);
        }
        /* A wake carries no event; what follows it (or EAGAIN on a
         * non-blocking socket that is now empty) is the answer. */
    }
}
