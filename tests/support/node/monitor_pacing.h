// Keeps umockdev from killing the simulation when a monitor falls behind.
//
// umockdev delivers each uevent with a non-blocking send to every listening
// monitor's unix datagram socket ($UMOCKDEV_DIR/event<N>), and exits the
// sending process when one of them is full. A unix datagram queue holds only
// net.unix.max_dgram_qlen + 1 messages (11 by default), so a daemon that is
// busy for a moment while a bridge with its GPUs goes away would take the
// whole node down. Before each send we therefore wait until every monitor
// has room; one still full after `patience` is hidden from that one send, so
// it loses the event, much as a real netlink socket drops on overflow.
//
// A kernel netlink socket that dropped an event also reports it: the socket
// turns readable at once and the next read fails with ENOBUFS. The caller
// does that with reportOverflow() once the change that the lost event
// announced is complete in sysfs, so that the monitor's rescan sees it (a
// remove uevent goes out before umockdev deletes the device's directory).
//
// Reentrant; call it from one sender at a time per testbed (SimNode's mutex).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace kvgpu::test {

// Runs `send` and returns the sockets of the monitors that missed its event.
std::vector<std::string> sendPaced(const std::string &umockdevRoot, std::chrono::milliseconds patience,
                                   const std::function<void()> &send);

// Tells the monitor bound at `monitorSocket` that it lost events, as the
// kernel would: its next read fails with ENOBUFS, and it is woken for that
// read even when its queue is empty (netlink_overflow.h).
void reportOverflow(const std::string &monitorSocket);

} // namespace kvgpu::test
