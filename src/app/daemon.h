// The serving daemon: wires the event sources (uevents, inotify on /dev/vfio
// and the plugin directory, signals) to the device registry and the plugin
// manager, all on one libuv loop.
//
// Threading contract: run() owns the loop thread for its whole duration. gRPC
// threads only post to the loop.
#pragma once

#include "app/options.h"

namespace kvgpu {

// Serves until SIGTERM or SIGINT; returns the process exit code.
int runDaemon(const CommonOptions &common, const ServeOptions &serve);

} // namespace kvgpu
