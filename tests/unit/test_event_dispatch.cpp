// The one event path, in-process on a real EventLoop: what reaches the plugin
// manager (the Publish callback) after events from each source, and how often
// the node is rescanned (every rescan names each GPU once, which the fake
// pci.ids counts).
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
    std::vector<std::map<std::string, Resource>> published;
    EventDispatch events;

    Node()
        : registry((build(), SysfsTree(sys.root())), DevTree(dev.root()), names),
          events(loop, registry, [this](std::map<std::string, Resource> changed) { published.push_back(changed); })
    {
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
    node.events.devChanged(EventDispatch::DevDirectory::Vfio, DirectoryWatch::Change::Deleted, "12");
    node.events.devChanged(EventDispatch::DevDirectory::Vfio, DirectoryWatch::Change::Deleted, "13");
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
    node.events.devChanged(EventDispatch::DevDirectory::Vfio, DirectoryWatch::Change::Deleted, "12");
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
