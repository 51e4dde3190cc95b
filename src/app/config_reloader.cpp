#include "app/config_reloader.h"

#include "base/log.h"
#include "config/config_parser.h"

#include <sys/inotify.h>

#include <utility>

namespace kvgpu {

ConfigReloader::ConfigReloader(std::string path, std::string nodeName, Metrics &metrics, EventDispatch &events)
    : path_(std::move(path)), nodeName_(std::move(nodeName)), metrics_(metrics), events_(events)
{
}

namespace {

// The directory of `file` ("." for a bare file name).
std::string directoryOf(const std::string &file)
{
    size_t slash = file.rfind('/');
    if (slash == std::string::npos)
        return ".";
    return slash == 0 ? std::string("/") : file.substr(0, slash);
}

} // namespace

Result<void> ConfigReloader::loadAtStart()
{
    std::string text;
    Result<ResourceConfig, ConfigError> config = loadResourceConfig(path_, &text);
    if (!config)
        return Error{config.error()};
    if (nodeName_.empty() && !config->nodes.empty())
        log::warn("the configuration has per-node rules but the node has no name (set --node-name or NODE_NAME); "
                  "only the global rules apply", {{"config", path_}});
    active_ = std::make_shared<const NodeRules>(rulesForNode(*config, nodeName_));
    activeHash_ = configHash(text);
    generation_ = 1;
    events_.applyRules(active_);
    return {};
}

Result<void> ConfigReloader::checkAtStart()
{
    if (Result<void> fits = events_.checkRules(*active_); !fits)
        return Error{path_ + ": " + fits.error()};
    metrics_.activeConfig(activeHash_, generation_);
    log::info("configuration in force", {{"config", path_}, {"hash", activeHash_}, {"node", nodeName_},
                                         {"rules", std::to_string(active_->rules.size())}});
    return {};
}

void ConfigReloader::watch(EventLoop &loop)
{
    const std::string directory = directoryOf(path_);
    auto watch = DirectoryWatch::create(
        loop, directory,
        DirectoryWatch::Callbacks{.change =
                                      [this, directory](DirectoryWatch::Change change, const std::string &) {
                                          dirty_ = true;
                                          if (change == DirectoryWatch::Change::DirectoryGone)
                                              log::error("the configuration's directory was removed or moved; "
                                                         "changes are read on SIGHUP only",
                                                         {{"directory", directory}});
                                      },
                                  .drained =
                                      [this] {
                                          if (std::exchange(dirty_, false))
                                              reload();
                                      }},
        IN_CLOSE_WRITE);
    if (!watch)
        log::error("cannot watch the configuration; changes are read on SIGHUP only", {{"error", watch.error()}});
    else
        watch_ = std::move(watch).value();
}

void ConfigReloader::refuse(const std::string &hash, const std::string &error)
{
    if (hash == refusedHash_)
        return;
    refusedHash_ = hash;
    metrics_.configReload("refused");
    log::error("configuration refused; the running one stays in force",
               {{"config", path_}, {"error", error}, {"running", activeHash_}});
}

void ConfigReloader::reload()
{
    std::string text;
    Result<ResourceConfig, ConfigError> config = loadResourceConfig(path_, &text);
    // An unreadable file has no text; its error stands in for it.
    std::string hash = config ? configHash(text) : configHash(config.error());
    if (config && hash == activeHash_) {
        refusedHash_.clear(); // back to the text in force: a bad text saved again is news again
        return;               // another event of the same change, or a save that changed nothing
    }
    if (!config) {
        refuse(hash, config.error());
        return;
    }
    auto rules = std::make_shared<const NodeRules>(rulesForNode(*config, nodeName_));
    if (Result<void> fits = events_.checkRules(*rules); !fits) {
        refuse(hash, fits.error());
        return;
    }
    std::shared_ptr<const NodeRules> previous = std::move(active_);
    active_ = std::move(rules);
    activeHash_ = hash;
    refusedHash_.clear();
    ++generation_;
    metrics_.configReload("applied");
    metrics_.activeConfig(activeHash_, generation_);
    log::info("configuration applied", {{"config", path_}, {"hash", activeHash_},
                                        {"generation", std::to_string(generation_)},
                                        {"rules", std::to_string(active_->rules.size())}});
    if (!withdrawalWait_ || !previous || !(offersDra(*previous) || offersDra(*active_))) {
        events_.applyRules(active_);
        return;
    }
    auto withdrawing = std::make_shared<NodeRules>(*active_);
    withdrawing->previous = previous;
    events_.applyRules(withdrawing);
    withdrawalWait_([this, generation = generation_] {
        // A newer change since then made its own two steps.
        if (generation == generation_)
            events_.applyRules(active_);
    });
}

bool offersDra(const NodeRules &rules)
{
    if (rules.api == DeviceApi::Dra)
        return true;
    for (const ResourceRule &rule : rules.rules)
        if (rule.api == DeviceApi::Dra)
            return true;
    return false;
}

} // namespace kvgpu
