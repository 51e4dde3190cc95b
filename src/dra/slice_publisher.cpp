#include "dra/slice_publisher.h"

#include "base/log.h"
#include "dra/slices.h"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

namespace kvgpu::dra {

namespace {

constexpr const char *kSlices = "/apis/resource.k8s.io/v1/resourceslices";

std::string queryEscape(std::string_view text)
{
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            out += static_cast<char>(c);
        else
            out += fmt::format("%{:02X}", c);
    }
    return out;
}

// A slice of this node and driver as the server holds it.
struct HeldSlice {
    std::string name, uid, resourceVersion;
    std::string pool;
    std::int64_t generation = 0;
    std::int64_t sliceCount = 0;
    long index = -1; // from the name's "<hex index>-" prefix; -1 when it has none
    nlohmann::json devices = nlohmann::json::array();
};

template <typename T>
std::optional<T> field(const nlohmann::json &object, const char *key)
{
    if (!object.is_object())
        return std::nullopt;
    auto it = object.find(key);
    if (it == object.end())
        return std::nullopt;
    if constexpr (std::is_same_v<T, std::string>) {
        if (!it->is_string())
            return std::nullopt;
    } else {
        if (!it->is_number_integer())
            return std::nullopt;
    }
    return it->get<T>();
}

const nlohmann::json &member(const nlohmann::json &object, const char *key)
{
    static const nlohmann::json null;
    if (!object.is_object())
        return null;
    auto it = object.find(key);
    return it == object.end() ? null : *it;
}

long indexOfName(const std::string &name)
{
    size_t dash = name.find('-');
    if (dash == 0 || dash == std::string::npos || dash > 8)
        return -1;
    long index = 0;
    for (size_t i = 0; i < dash; ++i) {
        char c = name[i];
        int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (digit < 0)
            return -1;
        index = index * 16 + digit;
    }
    return index;
}

std::optional<HeldSlice> heldSliceOf(const nlohmann::json &item)
{
    const nlohmann::json &metadata = member(item, "metadata");
    const nlohmann::json &spec = member(item, "spec");
    const nlohmann::json &pool = member(spec, "pool");
    HeldSlice held;
    auto name = field<std::string>(metadata, "name");
    auto uid = field<std::string>(metadata, "uid");
    auto version = field<std::string>(metadata, "resourceVersion");
    if (!name || !uid || !version)
        return std::nullopt;
    held.name = *name;
    held.uid = *uid;
    held.resourceVersion = *version;
    held.pool = field<std::string>(pool, "name").value_or("");
    held.generation = field<std::int64_t>(pool, "generation").value_or(0);
    held.sliceCount = field<std::int64_t>(pool, "resourceSliceCount").value_or(0);
    held.index = indexOfName(held.name);
    if (const nlohmann::json &devices = member(spec, "devices"); devices.is_array())
        held.devices = devices;
    return held;
}

// A device entry as it is compared: the server adds timeAdded to taints.
nlohmann::json comparable(nlohmann::json device, bool withTaints)
{
    if (!device.is_object())
        return device;
    if (auto taints = device.find("taints"); taints != device.end()) {
        if (!withTaints) {
            device.erase(taints);
        } else if (taints->is_array()) {
            for (nlohmann::json &taint : *taints)
                if (taint.is_object())
                    taint.erase("timeAdded");
        }
    }
    return device;
}

bool sameDevices(const nlohmann::json &wanted, const nlohmann::json &held, bool withTaints)
{
    if (!wanted.is_array() || !held.is_array() || wanted.size() != held.size())
        return false;
    for (size_t i = 0; i < wanted.size(); ++i)
        if (comparable(wanted[i], withTaints) != comparable(held[i], withTaints))
            return false;
    return true;
}

Result<nlohmann::json> parseBody(const kube::Response &response, const std::string &what)
{
    nlohmann::json body = nlohmann::json::parse(response.body, nullptr, false);
    if (body.is_discarded())
        return Error{fmt::format("{}: the API server's answer is not JSON", what)};
    return body;
}

Result<void> failed(const std::string &what, const kube::Response &response)
{
    std::string hint;
    if (response.status == 403)
        hint = " (does the service account have the RBAC of manifests/dra/rbac.yaml?)";
    return Error{fmt::format("{}: HTTP {}: {}{}", what, response.status, kube::statusMessage(response), hint)};
}

} // namespace

SlicePublisher::SlicePublisher(kube::Client &client, SlicePublisherOptions options)
    : client_(client), options_(std::move(options)),
      selector_(queryEscape(fmt::format("spec.nodeName={},spec.driver={}", options_.nodeName, options_.driver)))
{
}

SlicePublisher::~SlicePublisher() { stop(); }

void SlicePublisher::start()
{
    sync_ = std::thread([this] { syncLoop(); });
    watch_ = std::thread([this] { watchLoop(); });
}

void SlicePublisher::want(DevicesByName devices, std::uint64_t version)
{
    std::lock_guard lock(mutex_);
    wanted_ = std::move(devices);
    wantedVersion_ = version;
    resync_ = true;
    changed_.notify_all();
}

std::uint64_t SlicePublisher::publishedVersion() const
{
    std::lock_guard lock(mutex_);
    return publishedVersion_;
}

bool SlicePublisher::waitPublished(std::uint64_t version, std::chrono::milliseconds timeout) const
{
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return publishedVersion_ >= version || stopping_; }) &&
           publishedVersion_ >= version;
}

void SlicePublisher::stop()
{
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && !sync_.joinable() && !watch_.joinable())
            return;
        stopping_ = true;
        changed_.notify_all();
    }
    stopFlag_ = true;
    // The client is the DRA side's alone and stops with it: calls in flight
    // end now rather than at their timeout.
    client_.cancelAll();
    if (sync_.joinable())
        sync_.join();
    if (watch_.joinable())
        watch_.join();
}

void SlicePublisher::requestResync()
{
    std::lock_guard lock(mutex_);
    resync_ = true;
    changed_.notify_all();
}

void SlicePublisher::syncLoop()
{
    std::chrono::milliseconds backoff = options_.minBackoff;
    std::string lastError;
    while (true) {
        DevicesByName devices;
        std::uint64_t version = 0;
        {
            std::unique_lock lock(mutex_);
            changed_.wait(lock, [&] { return stopping_ || resync_; });
            if (stopping_)
                return;
            resync_ = false;
            devices = wanted_;
            version = wantedVersion_;
        }
        std::size_t slices = 0;
        const auto started = std::chrono::steady_clock::now();
        Result<void> synced = syncOnce(devices);
        if (synced) {
            log::debug("ResourceSlices synced",
                       {{"version", std::to_string(version)},
                        {"us", std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                                  std::chrono::steady_clock::now() - started)
                                                  .count())}});
            slices = lastSliceCount_;
            if (!lastError.empty())
                log::info("ResourceSlices published again", {{"driver", options_.driver}});
            lastError.clear();
            backoff = options_.minBackoff;
            std::lock_guard lock(mutex_);
            publishedVersion_ = std::max(publishedVersion_, version);
            changed_.notify_all();
        }
        if (options_.synced)
            options_.synced(synced ? version : 0, slices, devices.size(), synced.error());
        if (synced)
            continue;
        // Said once per distinct error, not at every retry.
        if (synced.error() != lastError)
            log::warn("cannot publish ResourceSlices; retrying with backoff",
                      {{"error", synced.error()}, {"retry_ms", std::to_string(backoff.count())}});
        lastError = synced.error();
        std::unique_lock lock(mutex_);
        resync_ = true;
        changed_.wait_for(lock, backoff, [&] { return stopping_; });
        backoff = std::min(backoff * 2, options_.maxBackoff);
    }
}

void SlicePublisher::watchLoop()
{
    while (!stopFlag_) {
        // List, then watch from the list's resourceVersion: the watch misses
        // no change after the list, and the sync requested after it catches
        // any change before it. A watch from nothing would replay only the
        // slices that exist, so slices the kubelet deleted while no watch was
        // open (it wipes the node's slices when it starts) would stay gone.
        Result<std::string> version = Error{};
        if (Result<nlohmann::json> list = listSlices(); !list)
            version = Error{list.error()};
        else if (auto listed = field<std::string>(member(*list, "metadata"), "resourceVersion"); listed && !listed->empty())
            version = *listed;
        else
            version = Error{"list ResourceSlices: the answer has no metadata.resourceVersion"};
        if (stopFlag_)
            return;
        Result<void> watched = Error{};
        if (version) {
            // What the list may have shown is checked by a sync against a
            // fresh list, not against our copy.
            forgetHeld();
            requestResync();
            const std::string path = fmt::format(
                "{}?watch=1&allowWatchBookmarks=true&timeoutSeconds=300&fieldSelector={}&resourceVersion={}", kSlices,
                selector_, queryEscape(*version));
            watched = client_.watch(
                path,
                [this](std::string_view line) {
                    nlohmann::json event = nlohmann::json::parse(line, nullptr, false);
                    if (field<std::string>(event, "type").value_or("") == "BOOKMARK")
                        return;
                    // The echo of our own write changes nothing. Anything else
                    // (the kubelet's wipe, another writer, an ERROR such as 410
                    // Gone, after which the next round lists again) makes our
                    // copy of the server's slices unknown and is checked by a
                    // sync, which writes only what differs.
                    auto seen = field<std::string>(member(member(event, "object"), "metadata"), "resourceVersion");
                    std::lock_guard lock(mutex_);
                    if (seen && held_ && ourVersions_.contains(*seen))
                        return;
                    held_.reset();
                    ourVersions_.clear();
                    resync_ = true;
                    changed_.notify_all();
                },
                stopFlag_);
        } else {
            watched = Error{version.error()};
        }
        if (stopFlag_)
            return;
        if (!watched)
            log::debug("ResourceSlice watch ended; watching again", {{"error", watched.error()}});
        // A pause keeps a failing server from being hammered.
        std::unique_lock lock(mutex_);
        changed_.wait_for(lock, std::chrono::seconds(watched ? 0 : 1), [&] { return stopping_; });
    }
}

Result<void> SlicePublisher::ensureNodeUid()
{
    const std::string what = fmt::format("GET node {}", options_.nodeName);
    Result<kube::Response> got = client_.request("GET", "/api/v1/nodes/" + options_.nodeName);
    if (!got)
        return Error{got.error()};
    if (!got->succeeded())
        return failed(what, *got);
    Result<nlohmann::json> node = parseBody(*got, what);
    if (!node)
        return Error{node.error()};
    auto uid = field<std::string>(member(*node, "metadata"), "uid");
    if (!uid || uid->empty())
        return Error{what + ": the Node has no metadata.uid"};
    nodeUid_ = *uid;
    return {};
}

Result<void> SlicePublisher::syncOnce(const DevicesByName &devices)
{
    // What the pool should hold.
    std::vector<nlohmann::json> entries;
    entries.reserve(devices.size());
    for (const auto &[name, device] : devices) {
        SliceDevice entry = sliceDevice(device, options_.driver);
        for (const std::string &omitted : entry.omitted)
            log::debug("attribute not published", {{"device", name}, {"why", omitted}});
        entries.push_back(std::move(entry.entry));
    }
    std::vector<nlohmann::json> wanted = splitDevices(std::move(entries));
    const auto count = static_cast<std::int64_t>(wanted.size());

    // What the server holds: as this thread last saw it when nobody else has
    // changed the node's slices since (the watch says), else listed again. A
    // write against a stale copy fails with a conflict and is retried after
    // a fresh list.
    std::optional<std::vector<nlohmann::json>> cached;
    {
        std::lock_guard lock(mutex_);
        cached = held_;
    }
    std::vector<nlohmann::json> items;
    if (cached) {
        items = std::move(*cached);
    } else {
        log::debug("listing ResourceSlices");
        Result<nlohmann::json> listed = listSlices();
        if (!listed)
            return Error{listed.error()};
        if (const nlohmann::json &listedItems = member(*listed, "items"); listedItems.is_array())
            items.assign(listedItems.begin(), listedItems.end());
        remember(items);
    }
    // From here on, whatever fails leaves the copy unknown.
    struct Forget {
        SlicePublisher &publisher;
        bool armed = true;
        ~Forget()
        {
            if (armed)
                publisher.forgetHeld();
        }
    } forget{*this};
    std::vector<HeldSlice> held;
    for (const nlohmann::json &item : items)
        if (std::optional<HeldSlice> slice = heldSliceOf(item))
            held.push_back(std::move(*slice));

    std::int64_t maxGeneration = 0;
    for (const HeldSlice &slice : held)
        if (slice.pool == options_.nodeName)
            maxGeneration = std::max(maxGeneration, slice.generation);
    std::vector<const HeldSlice *> byIndex(wanted.size(), nullptr);
    std::vector<const HeldSlice *> obsolete;
    for (const HeldSlice &slice : held) {
        bool current = slice.pool == options_.nodeName && slice.generation == maxGeneration && slice.index >= 0 &&
                       static_cast<size_t>(slice.index) < wanted.size() && !byIndex[slice.index];
        if (current)
            byIndex[slice.index] = &slice;
        else
            obsolete.push_back(&slice);
    }
    std::vector<size_t> changed;
    bool missing = false;
    for (size_t i = 0; i < wanted.size(); ++i) {
        const HeldSlice *slice = byIndex[i];
        missing |= !slice;
        if (!slice || slice->sliceCount != count || !sameDevices(wanted[i], slice->devices, !taintsDropped_))
            changed.push_back(i);
    }
    lastSliceCount_ = wanted.size();
    if (changed.empty() && obsolete.empty()) {
        forget.armed = false;
        return {};
    }

    // One slice changed in place keeps the generation; anything more is a new
    // generation, so that consumers never mix two states of the pool.
    bool bump = !(changed.size() == 1 && obsolete.empty() && !missing && maxGeneration > 0);
    const std::int64_t generation = bump ? maxGeneration + 1 : maxGeneration;
    // The owner reference names the Node's UID: read once, and again before
    // creating, in case the Node was deleted and created again.
    if (nodeUid_.empty() || missing)
        if (Result<void> uid = ensureNodeUid(); !uid)
            return uid;

    for (const HeldSlice *slice : obsolete) {
        nlohmann::json options = {{"apiVersion", "v1"},
                                  {"kind", "DeleteOptions"},
                                  {"preconditions", {{"uid", slice->uid}, {"resourceVersion", slice->resourceVersion}}}};
        Result<kube::Response> deleted =
            client_.request("DELETE", fmt::format("{}/{}", kSlices, slice->name), options.dump());
        if (!deleted)
            return Error{deleted.error()};
        if (!deleted->succeeded() && deleted->status != 404)
            return failed("delete ResourceSlice " + slice->name, *deleted);
        const std::string gone = slice->name;
        std::erase_if(items, [&](const nlohmann::json &item) {
            return field<std::string>(member(item, "metadata"), "name") == gone;
        });
    }
    for (size_t i = 0; i < wanted.size(); ++i) {
        const HeldSlice *slice = byIndex[i];
        bool write = bump || std::find(changed.begin(), changed.end(), i) != changed.end();
        if (!write)
            continue;
        nlohmann::json object =
            sliceObject(options_.driver, options_.nodeName, nodeUid_, options_.nodeName, generation, count, i, wanted[i]);
        Result<kube::Response> written = Error{};
        std::string what;
        if (slice) {
            object["metadata"].erase("generateName");
            object["metadata"]["name"] = slice->name;
            object["metadata"]["resourceVersion"] = slice->resourceVersion;
            what = "update ResourceSlice " + slice->name;
            written = client_.request("PUT", fmt::format("{}/{}", kSlices, slice->name), object.dump());
        } else {
            what = "create ResourceSlice";
            written = client_.request("POST", kSlices, object.dump());
        }
        if (!written)
            return Error{written.error()};
        if (!written->succeeded())
            return failed(what, *written);
        nlohmann::json back = nlohmann::json::parse(written->body, nullptr, false);
        if (!heldSliceOf(back))
            return Error{what + ": the API server's answer is not a ResourceSlice"};
        // The server's copy replaces ours, and its version is one the watch
        // will echo.
        const std::string name = *field<std::string>(member(back, "metadata"), "name");
        std::erase_if(items, [&](const nlohmann::json &item) {
            return field<std::string>(member(item, "metadata"), "name") == name;
        });
        items.push_back(back);
        remember({back}, false);
        // A server with DRADeviceTaints off drops taints; comparing them would
        // rewrite the slice forever.
        if (!taintsDropped_) {
            const nlohmann::json &devicesBack = member(member(back, "spec"), "devices");
            if (devicesBack.is_array() && !sameDevices(wanted[i], devicesBack, true) &&
                sameDevices(wanted[i], devicesBack, false)) {
                taintsDropped_ = true;
                log::warn("the API server drops device taints (feature gate DRADeviceTaints off?): unhealthy "
                          "devices stay allocatable through DRA; NodePrepareResources still refuses them");
            }
        }
    }
    forget.armed = false;
    remember(items);
    return {};
}

Result<nlohmann::json> SlicePublisher::listSlices()
{
    Result<kube::Response> listed = client_.request("GET", fmt::format("{}?fieldSelector={}", kSlices, selector_));
    if (!listed)
        return Error{listed.error()};
    if (!listed->succeeded())
        return Error{failed("list ResourceSlices", *listed).error()};
    return parseBody(*listed, "list ResourceSlices");
}

void SlicePublisher::remember(const std::vector<nlohmann::json> &items, bool whole)
{
    std::lock_guard lock(mutex_);
    if (whole) {
        held_ = items;
        ourVersions_.clear();
    }
    for (const nlohmann::json &item : items)
        if (auto version = field<std::string>(member(item, "metadata"), "resourceVersion"))
            ourVersions_.insert(*version);
}

void SlicePublisher::forgetHeld()
{
    std::lock_guard lock(mutex_);
    held_.reset();
    ourVersions_.clear();
}

} // namespace kvgpu::dra
