// The one event path, in-process on a real EventLoop: what reaches a
// subscriber of the index (as the plugin manager keeps it: whole lists,
// rebuilt from each publish's changes) after events from each source, and how often
// the node is rescanned (every rescan names each GPU once, which the fake
// pci.ids counts).
#include "app/config_reloader.h"
#include "app/event_dispatch.h"
#include "fake_names.h"
#include "temp_tree.h"

#include <doctest/doctest.h>

using namespace kvgpu;
using namespace kvgpu::test;

namespace {

const std::string kT4 = "nvidia.com/TU104GL_TESLA_T4";

// Two passthrough T4s in groups 12 and 13 with their /dev/vfio nodes.
struct Node {
    TempTree sys, dev;
    FakeNames names = nvidiaNames();
    EventLoop loop;
    DeviceRegistry registry;
    // The lists of the resources that changed, after each publish that changed one.
    std::vector<std::map<std::string, Resource>> published;
    std::vector<std::uint64_t> generations;
    std::vector<std::vector<DeviceChange>> changes; // of each publish
    EventDispatch events;

    struct Recorder final : IndexSubscriber {
        Node &node;
        std::map<std::string, DeviceMap> lists;
        explicit Recorder(Node &n) : node(n) {}
        void indexChanged(const IndexChanges &changes) override
        {
            node.generations.push_back(changes.generation);
            node.changes.push_back(changes.devices);
            if (changes.resources.empty())
                return;
            std::map<std::string, Resource> changed;
            for (const auto &[name, delta] : changes.resources) {
                applyDelta(lists[name], delta);
                changed.emplace(name, toResource(name, delta.kind, lists[name]));
            }
            node.published.push_back(std::move(changed));
        }
    } recorder{*this};

    Node() : registry((build(), SysfsTree(sys.root())), DevTree(dev.root()), names), events(loop, registry)
    {
        events.subscribe(recorder);
    }

    void build()
    {
        addPci(sys, FakePci{.address = "0000:65:00.0", .group = 12});
        addPci(sys, FakePci{.address = "0000:66:00.0", .group = 13});
        dev.write("vfio/vfio", "");
        dev.write("vfio/12", "");
        dev.write("vfio/13", "");
    }

    // Runs what is queued on the loop (a deferred rescan), then returns.
    void turnLoop()
    {
        loop.post([this] { loop.stop(); });
        loop.run();
    }

    std::vector<std::string> unhealthyIn(const std::map<std::string, Resource> &update) const
    {
        std::vector<std::string> ids;
        for (const AdvertisedDevice &device : update.at(kT4).devices)
            if (!device.healthy)
                ids.push_back(device.id);
        return ids;
    }
};

} // namespace

TEST_CASE("group nodes deleted in /dev/vfio are published once, at the end of the inotify batch")
{
    Node node;
    node.events.initialScan();
    REQUIRE(node.published.size() == 1);
    REQUIRE(node.unhealthyIn(node.published[0]).empty());

    node.dev.remove("vfio/12");
    node.dev.remove("vfio/13");
    node.events.devChanged(DevWatch::Directory::Vfio, DirectoryWatch::Change::Deleted, "12");
    node.events.devChanged(DevWatch::Directory::Vfio, DirectoryWatch::Change::Deleted, "13");
    CHECK(node.published.size() == 1); // nothing before the batch ends

    node.events.devBatchEnd();
    REQUIRE(node.published.size() == 2);
    CHECK(node.unhealthyIn(node.published[1]) == std::vector<std::string>{"0000:65:00.0", "0000:66:00.0"});
}

TEST_CASE("uevents of one drained batch are published once")
{
    Node node;
    node.events.initialScan();
    node.sys.remove("devices/pci0000:64/0000:64:00.0/0000:65:00.0/driver");
    node.sys.remove("devices/pci0000:64/0000:64:00.0/0000:66:00.0/driver");
    node.events.uevent(Uevent{.action = "unbind", .subsystem = "pci", .sysname = "0000:65:00.0"});
    node.events.uevent(Uevent{.action = "unbind", .subsystem = "pci", .sysname = "0000:66:00.0"});
    CHECK(node.published.size() == 1);

    node.events.ueventBatchEnd(UeventMonitor::BatchEnd::Drained);
    REQUIRE(node.published.size() == 2);
    CHECK(node.published[1].at(kT4).devices.empty());
}

TEST_CASE("2,000 rescan requests before the loop turns are one rescan, and what it found is published")
{
    Node node;
    node.events.initialScan();
    const int scanned = node.names.lookups;
    REQUIRE(scanned > 0);
    const int perGpu = scanned / 2;

    // A GPU that arrived without an event (as after lost uevents).
    addPci(node.sys, FakePci{.address = "0000:67:00.0", .group = 14});
    node.dev.write("vfio/14", "");
    for (int i = 0; i < 2000; ++i)
        node.events.requestRescan("SIGHUP");
    CHECK(node.published.size() == 1); // deferred to the loop

    node.turnLoop();
    CHECK(node.names.lookups == scanned + 3 * perGpu); // one rescan of three GPUs
    REQUIRE(node.published.size() == 2);
    CHECK(node.published[1].at(kT4).devices.size() == 3);
}

TEST_CASE("a batch that ends while a rescan is queued waits for the rescan, which publishes it")
{
    Node node;
    node.events.initialScan();
    node.events.ueventBatchEnd(UeventMonitor::BatchEnd::Lost);
    node.dev.remove("vfio/12");
    node.events.devChanged(DevWatch::Directory::Vfio, DirectoryWatch::Change::Deleted, "12");
    node.events.devBatchEnd();
    CHECK(node.published.size() == 1);

    node.turnLoop();
    REQUIRE(node.published.size() == 2);
    CHECK(node.unhealthyIn(node.published[1]) == std::vector<std::string>{"0000:65:00.0"});
}

TEST_CASE("stop (SIGTERM) drops a queued rescan, and nothing is published after it")
{
    Node node;
    node.events.initialScan();
    int lookups = node.names.lookups;
    addPci(node.sys, FakePci{.address = "0000:67:00.0", .group = 14});
    node.events.requestRescan("SIGHUP");
    node.events.stop();
    node.turnLoop();
    CHECK(node.names.lookups == lookups);
    CHECK(node.published.size() == 1);
}

TEST_CASE("every publish has the next generation, also one that changed nothing")
{
    Node node;
    node.events.initialScan();
    node.events.ueventBatchEnd(UeventMonitor::BatchEnd::Drained);
    node.events.devBatchEnd();
    CHECK(node.generations == std::vector<std::uint64_t>{1, 2, 3});
    CHECK(node.events.generation() == 3);
    CHECK(node.published.size() == 1); // only the first changed a list
}

TEST_CASE("an iommufd cdev coming or going re-derives the devices of its group, not the node")
{
    Node node;
    node.sys.mkdir("devices/pci0000:64/0000:64:00.0/0000:65:00.0/vfio-dev/vfio3");
    node.events.initialScan();
    const int perGpu = node.names.lookups / 2;
    REQUIRE(perGpu > 0);

    int before = node.names.lookups;
    node.events.devChanged(DevWatch::Directory::VfioDevices, DirectoryWatch::Change::Created, "vfio3");
    node.events.devBatchEnd();
    CHECK(node.names.lookups == before + perGpu); // 0000:65:00.0 alone

    before = node.names.lookups;
    node.events.devChanged(DevWatch::Directory::VfioDevices, DirectoryWatch::Change::Deleted, "vfio9");
    node.events.devBatchEnd();
    CHECK(node.names.lookups == before); // nobody's cdev: nothing to re-derive

    // What is missed is unknown: then the whole node.
    before = node.names.lookups;
    node.events.devChanged(DevWatch::Directory::VfioDevices, DirectoryWatch::Change::Overflow, "");
    node.events.devBatchEnd();
    CHECK(node.names.lookups == before + 2 * perGpu);
}

TEST_CASE("a GPU whose group node comes in the same batch is reported once, as it is at the end of the batch")
{
    Node node;
    node.events.initialScan();
    addPci(node.sys, FakePci{.address = "0000:67:00.0", .group = 14});
    node.events.uevent(Uevent{.action = "add", .subsystem = "pci", .sysname = "0000:67:00.0"});
    node.dev.write("vfio/14", "");
    node.events.uevent(Uevent{.action = "add", .subsystem = "vfio", .sysname = "14"});
    node.events.ueventBatchEnd(UeventMonitor::BatchEnd::Drained);

    REQUIRE(node.changes.size() == 2);
    std::vector<DeviceChange> verdicts;
    for (const DeviceChange &change : node.changes[1])
        if (change.kind != DeviceChange::Kind::Warnings)
            verdicts.push_back(change);
    REQUIRE(verdicts.size() == 1);
    const DeviceChange &change = verdicts[0];
    CHECK(change.kind == DeviceChange::Kind::Advertised);
    CHECK(change.id == "0000:67:00.0");
    CHECK(change.healthy);
    CHECK(change.reason.empty());
}

TEST_CASE("a reload that moves a device to DRA withdraws it from both APIs before DRA offers it")
{
    Node node;
    TempTree config;
    config.write("config.yaml", "version: 1\nresources: []\n");
    ConfigReloader reloader(config.root() + "/config.yaml", "node-a", Metrics::none(), node.events);
    REQUIRE(reloader.loadAtStart().ok());
    std::function<void()> afterWithdrawal;
    reloader.setWithdrawalWait([&](std::function<void()> next) { afterWithdrawal = std::move(next); });
    node.events.initialScan();
    // The API that offers `id`, in whichever resource.
    auto offered = [&](const std::string &id) -> std::optional<DeviceApi> {
        for (const auto &[name, list] : node.recorder.lists)
            if (auto it = list.find(id); it != list.end())
                return it->second.api;
        return std::nullopt;
    };
    REQUIRE(offered("0000:65:00.0") == DeviceApi::DevicePlugin);

    config.write("config.yaml", "version: 1\nresources:\n  - name: nvidia.com/t4-dra\n    api: dra\n"
                                "    match: {addresses: [\"0000:65:00.0\"]}\n");
    reloader.reload();
    // Step one: offered by neither, while the other T4 stays where it was.
    CHECK_FALSE(offered("0000:65:00.0").has_value());
    CHECK(offered("0000:66:00.0") == DeviceApi::DevicePlugin);
    REQUIRE(afterWithdrawal);
    // Step two, once the withdrawal is out: DRA offers it.
    afterWithdrawal();
    CHECK(offered("0000:65:00.0") == DeviceApi::Dra);
    CHECK(offered("0000:66:00.0") == DeviceApi::DevicePlugin);
}

TEST_CASE("a reload that involves no DRA applies in one step, as before")
{
    Node node;
    TempTree config;
    config.write("config.yaml", "version: 1\nresources: []\n");
    ConfigReloader reloader(config.root() + "/config.yaml", "node-a", Metrics::none(), node.events);
    REQUIRE(reloader.loadAtStart().ok());
    bool waited = false;
    reloader.setWithdrawalWait([&](std::function<void()>) { waited = true; });
    node.events.initialScan();
    config.write("config.yaml", "version: 1\nresources:\n  - name: nvidia.com/t4\n");
    reloader.reload();
    CHECK_FALSE(waited);
    CHECK(node.recorder.lists["nvidia.com/t4"].size() == 2);
}
