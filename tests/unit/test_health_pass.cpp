// The health pass on a real event loop and registry: it reads one device per
// loop turn, so what happens on the node while it runs is published without
// waiting for the pass to end.
#include "app/health_pass.h"
#include "fake_names.h"
#include "temp_tree.h"
#include "timeouts.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <fmt/format.h>

using namespace kvgpu;
using kvgpu::test::FakePci;
using kvgpu::test::TempTree;

namespace {

const std::string kFallsOffBus = std::string("\xff\xff", 2);
const std::string kAlive = std::string("\xde\x10", 2);

// A node of `count` T4s, each in its own IOMMU group with its /dev/vfio node.
struct GpuNode {
    TempTree sys, dev;
    std::vector<FakePci> gpus;

    explicit GpuNode(int count)
    {
        dev.write("vfio/vfio", "");
        for (int i = 0; i < count; ++i) {
            FakePci gpu{.address = fmt::format("0000:{:02x}:00.0", 0x10 + i), .group = 100 + i};
            addPci(sys, gpu);
            sys.write(devicePath(gpu) + "/config", kAlive);
            dev.write(fmt::format("vfio/{}", 100 + i), "");
            gpus.push_back(gpu);
        }
    }
    void fallOffBus(int i) { sys.write(devicePath(gpus[i]) + "/config", kFallsOffBus); }
    const std::string &address(int i) const { return gpus[i].address; }
};

// What the kubelet would be told, in order: one entry per device verdict.
struct Published {
    std::string id;
    bool healthy;
    std::string reason;
};

std::ptrdiff_t indexOf(const std::vector<Published> &published, const std::string &id, bool healthy)
{
    for (size_t i = 0; i < published.size(); ++i)
        if (published[i].id == id && published[i].healthy == healthy)
            return static_cast<std::ptrdiff_t>(i);
    return -1;
}

// Runs one pass on the loop, calling `onPublish` wherever the daemon would
// publish, until the pass ends (or a generous guard expires: then false).
bool runPass(EventLoop &loop, DeviceRegistry &registry, const std::function<void(HealthPass &)> &onPublish)
{
    bool ended = false;
    HealthPass *self = nullptr;
    HealthPass pass(loop, registry, 0, [&] {
        onPublish(*self);
        if (!self->running()) {
            ended = true;
            loop.stop();
        }
    });
    self = &pass;
    Timer guard(loop);
    guard.start(static_cast<uint64_t>(kvgpu::test::scaled(std::chrono::seconds(10)).count()), 0, [&] { loop.stop(); });
    pass.start();
    loop.run();
    return ended;
}

} // namespace

TEST_CASE("a vfio node removed while a health pass runs is published before the pass reaches its last GPU")
{
    GpuNode node(20);
    test::FakeNames names = test::nvidiaNames();
    EventLoop loop;
    DeviceRegistry registry(SysfsTree(node.sys.root()), DevTree(node.dev.root()), names);
    registry.rescan();
    (void)registry.takeChanges();

    // The first and the last GPU of the pass have fallen off the bus since the scan.
    node.fallOffBus(0);
    node.fallOffBus(19);

    std::vector<Published> published;
    auto publish = [&] {
        for (const DeviceIndex::Change &change : registry.takeChanges())
            if (change.kind == DeviceIndex::Change::Kind::HealthChanged)
                published.push_back({change.id, change.healthy, change.reason});
    };
    bool removed = false;
    bool passEnded = runPass(loop, registry, [&](HealthPass &) {
        publish();
        // As soon as the pass has reported the first GPU, the node changes:
        // the VFIO node of a GPU in the middle goes, and the event for it
        // reaches the loop (as an inotify change would).
        if (!removed && indexOf(published, node.address(0), false) >= 0) {
            removed = true;
            node.dev.remove("vfio/110");
            loop.post([&] {
                registry.reconcileVfioNode(110);
                publish();
            });
        }
    });
    CHECK(loop.close() == 0);

    REQUIRE(passEnded);
    std::ptrdiff_t first = indexOf(published, node.address(0), false);
    std::ptrdiff_t event = indexOf(published, node.address(10), false);
    std::ptrdiff_t last = indexOf(published, node.address(19), false);
    REQUIRE(first >= 0);
    REQUIRE(event >= 0);
    REQUIRE(last >= 0);
    CHECK(published[static_cast<size_t>(first)].reason == "fell off the bus: config space reads vendor 0xffff");
    CHECK(published[static_cast<size_t>(event)].reason == "no /dev/vfio/110");
    // The event did not wait for the pass: it went out between two GPUs.
    CHECK(first < event);
    CHECK(event < last);
    CHECK(published.size() == 3);
}

TEST_CASE("a GPU removed during a pass is skipped, and a pass is never stacked on a running one")
{
    GpuNode node(3);
    test::FakeNames names = test::nvidiaNames();
    EventLoop loop;
    DeviceRegistry registry(SysfsTree(node.sys.root()), DevTree(node.dev.root()), names);
    registry.rescan();
    (void)registry.takeChanges();

    node.fallOffBus(2);
    int publishes = 0;
    std::vector<DeviceIndex::Change> changes;
    bool passEnded = runPass(loop, registry, [&](HealthPass &pass) {
        ++publishes;
        for (DeviceIndex::Change &change : registry.takeChanges())
            changes.push_back(std::move(change));
        if (publishes == 1) {
            // The second GPU is unplugged before the pass gets to it, and the
            // timer fires again meanwhile.
            node.sys.remove("bus/pci/devices/" + node.address(1));
            registry.reconcilePciFunction(node.address(1), {}, true);
            pass.start();
        }
    });
    CHECK(loop.close() == 0);

    CHECK(passEnded);
    CHECK(publishes == 3); // one per GPU of the first pass, and no second pass
    REQUIRE(changes.size() == 2);
    CHECK(changes[0].kind == DeviceIndex::Change::Kind::Withdrawn);
    CHECK(changes[0].id == node.address(1));
    CHECK(changes[1].kind == DeviceIndex::Change::Kind::HealthChanged);
    CHECK(changes[1].id == node.address(2));
    CHECK_FALSE(registry.observation().functions.contains(node.address(1)));
}
