// Keeps the resource configuration (--config) in force, from the first read
// at start to every change of the file while the daemon runs.
//
// A change is applied whole or not at all: the file is parsed and validated,
// then checked against the devices on the node (one resource name must not
// hold two kinds of device), and only then handed to the registry, which
// re-derives every device. A refused file leaves the running configuration
// in force; its error is logged and counted once per distinct text, however
// many inotify events the same save produces.
//
// Threading contract: bound to the loop thread.
#pragma once

#include "base/result.h"
#include "config/config_watch.h"
#include "config/rule_match.h"
#include "loop/event_loop.h"
#include "metrics/metrics.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace kvgpu {

class ConfigReloader {
public:
    struct Target {
        // Why `rules` cannot apply to the node as it is now; nullopt when they can.
        std::function<std::optional<std::string>(const NodeRules &rules)> conflict;
        // Makes `rules` the ones in force and publishes what changed.
        std::function<void(std::shared_ptr<const NodeRules> rules)> apply;
    };

    ConfigReloader(std::string path, std::string nodeName, Metrics &metrics, Target target);

    // The first read, before the initial scan: an unreadable or invalid file
    // is an error the daemon exits with. Applies the rules on success.
    Result<bool> loadAtStart();
    // After the initial scan: the same check a reload makes against the node.
    Result<bool> checkAtStart();
    // Starts watching the file's directory; a failure is logged (changes are
    // then read on SIGHUP only).
    void watch(EventLoop &loop);
    // Reads the file again and applies it when its text changed and it is valid.
    void reload();

private:
    void refuse(const std::string &hash, const std::string &error);

    std::string path_;
    std::string nodeName_;
    Metrics &metrics_;
    Target target_;
    std::string activeHash_;
    std::shared_ptr<const NodeRules> active_;
    std::string refusedHash_; // the text last refused, so that it is reported once
    unsigned generation_ = 0;
    std::unique_ptr<ConfigWatch> watch_;
};

} // namespace kvgpu
