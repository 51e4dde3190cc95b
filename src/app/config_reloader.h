// Keeps the resource configuration (--config) in force, from the first read
// at start to every change of the file while the daemon runs.
//
// A change is applied whole or not at all: the file is parsed and validated,
// then checked against the devices on the node (one resource name must not
// hold two kinds of device), and only then handed to the event dispatch,
// which re-derives every device and publishes the moves.
//
// The file's directory is watched, not the file: a mounted ConfigMap is
// updated by atomically swapping its `..data` symlink (the file itself is a
// symlink through it and never changes), and editors save by renaming a new
// file over the old one, which would end a watch on the file. Writes in place
// are seen too (close after write). Every batch of events in the directory
// counts: the file is re-read and compared, which is cheap and never misses
// an indirection. A refused file leaves the running configuration
// in force; its error is logged and counted once per distinct text, however
// many inotify events the same save produces.
//
// A change that moves devices between the two APIs (`api:`) goes in two
// steps, so that no device is ever offered by both: first the moving devices
// are withdrawn from both (NodeRules::previous), then, once the withdrawal is
// out (the DRA side's slices are written; the device plugin side's streams
// are sent at once), the new rules apply whole.
//
// Threading contract: bound to the loop thread.
#pragma once

#include "app/event_dispatch.h"
#include "base/result.h"
#include "config/rule_match.h"
#include "loop/event_loop.h"
#include "metrics/metrics.h"
#include "monitor/directory_watch.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace kvgpu {

class ConfigReloader {
public:
    ConfigReloader(std::string path, std::string nodeName, Metrics &metrics, EventDispatch &events);

    // The first read, before the initial scan: an unreadable or invalid file
    // is an error the daemon exits with. Applies the rules on success.
    Result<void> loadAtStart();
    // After the initial scan: the same check a reload makes against the node.
    Result<void> checkAtStart();
    // Starts watching the file's directory; a failure is logged (changes are
    // then read on SIGHUP only).
    void watch(EventLoop &loop);
    // Reads the file again and applies it when its text changed and it is valid.
    void reload();
    // How a two-step change waits for its withdrawal: `wait(next)` runs
    // `next` on the loop once the withdrawal published now is out. Without
    // it, changes apply in one step.
    void setWithdrawalWait(std::function<void(std::function<void()>)> wait) { withdrawalWait_ = std::move(wait); }
    // The rules in force.
    const NodeRules &rules() const { return *active_; }

private:
    void refuse(const std::string &hash, const std::string &error);

    std::string path_;
    std::string nodeName_;
    Metrics &metrics_;
    EventDispatch &events_;
    std::string activeHash_;
    std::shared_ptr<const NodeRules> active_;
    std::string refusedHash_; // the text last refused, so that it is reported once
    unsigned generation_ = 0;
    std::unique_ptr<DirectoryWatch> watch_;
    bool dirty_ = false; // an event in the directory since the last re-read
    std::function<void(std::function<void()>)> withdrawalWait_;
};

// Whether `rules` offer anything through DRA (a default or a rule).
bool offersDra(const NodeRules &rules);

} // namespace kvgpu
