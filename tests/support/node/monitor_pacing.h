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
// Reentrant; call it from one sender at a time per testbed (SimNode's mutex).
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace kvgpu::test {

void sendPaced(const std::string &umockdevRoot, std::chrono::milliseconds patience,
               const std::function<void()> &send);

// The file whose existence tells the monitor bound at `monitorSocket` that it
// lost events (see netlink_overflow_preload.c).
std::string overflowMarkPath(const std::string &monitorSocket);

} // namespace kvgpu::test
