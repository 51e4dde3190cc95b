/*
 * What the simulated node (monitor_pacing.cpp) and the preloaded
 * netlink_overflow_preload.c agree on to make a uevent monitor that lost
 * events behave as a kernel netlink socket that overflowed: its next read
 * fails with ENOBUFS, and it is woken for that read.
 *
 * - The mark: the file $UMOCKDEV_DIR/overflowed-event<N> beside the monitor's
 *   socket $UMOCKDEV_DIR/event<N>. The preload turns it into one ENOBUFS.
 * - The wake: one datagram with exactly this payload, sent to the monitor's
 *   socket after the mark exists. The kernel's overflow makes the socket
 *   readable at once (sk_err); a monitor that had drained its queue before
 *   the drop would otherwise sleep until the next event. The preload takes
 *   the datagram out of the stream, so the monitor never reads it.
 *
 * Shared by C and C++.
 */
#ifndef KVGPU_TEST_NETLINK_OVERFLOW_H
#define KVGPU_TEST_NETLINK_OVERFLOW_H

#define KVGPU_OVERFLOW_MARK_PREFIX "overflowed-"
#define KVGPU_OVERFLOW_WAKE "kvgpu-sim-node: events were dropped here"

#endif
