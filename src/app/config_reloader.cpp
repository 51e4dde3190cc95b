#include "app/config_reloader.h"

#include "base/log.h"
#include "config/config_parser.h"

namespace kvgpu {

ConfigReloader::ConfigReloader(std::string path, std::string nodeName, Metrics &metrics, Target target)
    : path_(std::move(path)), nodeName_(std::move(nodeName)), metrics_(metrics), target_(std::move(target))
{
}

Result<bool> ConfigReloader::loadAtStart()
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
    target_.apply(active_);
    return true;
}

Result<bool> ConfigReloader::checkAtStart()
{
    if (std::optional<std::string> conflict = target_.conflict(*active_))
        return Error{path_ + ": " + *conflict};
    metrics_.activeConfig(activeHash_, generation_);
    log::info("configuration in force", {{"config", path_}, {"hash", activeHash_}, {"node", nodeName_},
                                         {"rules", std::to_string(active_->size())}});
    return true;
}

void ConfigReloader::watch(EventLoop &loop)
{
    std::string error;
    watch_ = ConfigWatch::create(loop, path_, [this] { reload(); }, error);
    if (!watch_)
        log::error("cannot watch the configuration; changes are read on SIGHUP only", {{"error", error}});
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
    if (std::optional<std::string> conflict = target_.conflict(*rules)) {
        refuse(hash, *conflict);
        return;
    }
    active_ = std::move(rules);
    activeHash_ = hash;
    refusedHash_.clear();
    ++generation_;
    metrics_.configReload("applied");
    metrics_.activeConfig(activeHash_, generation_);
    log::info("configuration applied", {{"config", path_}, {"hash", activeHash_},
                                        {"generation", std::to_string(generation_)},
                                        {"rules", std::to_string(active_->size())}});
    target_.apply(active_);
}

} // namespace kvgpu
