// Uevents through the daemon's own dispatch (applyUevent: subsystem, device
// name, ERROR_EVENT) while the node changes under the registry: drivers
// unbound and rebound (a host driver on a group member makes the group
// unusable), VFIO group nodes removed and recreated, vGPUs and functions
// removed from their bus, a numa_node file turned to garbage; each change
// followed by the event the kernel sends for it, mixed with events of any
// subsystem and any device name.
//
// After every event:
//  - what the registry advertises equals a full derivation from what it has
//    observed (the incremental index never drifts);
//  - in inputs without PCIe recovery events (whose history sysfs does not
//    show), what it has observed and advertises equals a full rescan of the
//    node: incremental updates converge.
#include "app/event_dispatch.h"
#include "index/registry.h"
#include "fuzz_node.h"
#include "fuzz_support.h"

#include <functional>

using namespace kvgpu;

namespace {

fuzz::FixedNode *g_node = nullptr;

std::string pick(FuzzedDataProvider &data, const std::vector<std::string> &from)
{
    return from[data.ConsumeIntegralInRange<size_t>(0, from.size() - 1)];
}

std::string sysname(FuzzedDataProvider &data)
{
    switch (data.ConsumeIntegralInRange(0, 9)) {
    case 0: return data.ConsumeRandomLengthString(48);
    case 1: return std::to_string(data.ConsumeIntegralInRange(-2, 200));
    case 2: {
        // Names that walk the tree: "../devices/0000:65:00.0", "0000:b1:00.0/<uuid>", ...
        static const char *const prefixes[] = {"../", "./", "../../bus/pci/devices/", "0000:b1:00.0/", "/"};
        return prefixes[data.ConsumeIntegralInRange(0, 4)] + pick(data, data.ConsumeBool() ? g_node->addresses : g_node->uuids);
    }
    case 3: case 4: case 5: return pick(data, g_node->addresses);
    case 6: case 7: return pick(data, g_node->uuids);
    default: return std::to_string(g_node->groups[data.ConsumeIntegralInRange<size_t>(0, g_node->groups.size() - 1)]);
    }
}

// Reversible changes of the node, each undone before the next input.
class NodeChanges {
public:
    explicit NodeChanges(FuzzedDataProvider &data) : data_(data) {}
    ~NodeChanges()
    {
        for (auto it = undo_.rbegin(); it != undo_.rend(); ++it)
            (*it)();
    }

    // Unbinds a function from its driver, or binds one (vfio-pci, or a host
    // driver): the pci "unbind"/"bind" event.
    Uevent toggleDriver(const std::string &address)
    {
        std::string link = g_node->functionDirs.at(address) + "/driver";
        if (auto target = g_node->sysfs().readLink(link)) {
            g_node->sys.remove(link);
            undo_.push_back([link, t = *target] { g_node->sys.link(link, t); });
            return event("unbind", "pci", address);
        }
        static const char *const drivers[] = {"vfio-pci", "snd_hda_intel", "nvidia", "pci-stub"};
        g_node->sys.link(link, std::string("../../../../bus/pci/drivers/") + drivers[data_.ConsumeIntegralInRange(0, 3)]);
        undo_.push_back([link] { g_node->sys.remove(link); });
        return event("bind", "pci", address);
    }

    // Removes a /dev/vfio group node (or creates one): the vfio remove/add event.
    Uevent toggleGroupNode(int group)
    {
        std::string node = "vfio/" + std::to_string(group);
        if (g_node->devTree().exists(node)) {
            g_node->dev.remove(node);
            undo_.push_back([node] { g_node->dev.write(node, ""); });
            return event("remove", "vfio", std::to_string(group));
        }
        g_node->dev.write(node, "");
        undo_.push_back([node] { g_node->dev.remove(node); });
        return event("add", "vfio", std::to_string(group));
    }

    // Removes a device from its bus: the remove event (or, when it is gone
    // already, a replayed add that finds nothing).
    Uevent toggleBusLink(const std::string &bus, const std::string &name)
    {
        std::string link = "bus/" + bus + "/devices/" + name;
        if (auto target = g_node->sysfs().readLink(link)) {
            g_node->sys.remove(link);
            undo_.push_back([link, t = *target] { g_node->sys.link(link, t); });
            return event("remove", bus, name);
        }
        return event("add", bus, name);
    }

    // Turns a function's numa_node file into garbage: the function becomes
    // unreadable (and a vGPU parent takes its vGPUs with it).
    Uevent corruptNuma(const std::string &address)
    {
        std::string file = g_node->functionDirs.at(address) + "/numa_node";
        auto old = g_node->sysfs().readFile(file);
        g_node->sys.write(file, "garbage\n");
        if (old)
            undo_.push_back([file, o = *old] { g_node->sys.write(file, o); });
        else
            undo_.push_back([file] { g_node->sys.remove(file); });
        return event("change", "pci", address);
    }

private:
    static Uevent event(const char *action, const std::string &subsystem, const std::string &name)
    {
        return Uevent{action, subsystem, name, "", {}};
    }

    FuzzedDataProvider &data_;
    std::vector<std::function<void()>> undo_;
};

std::string keys(const auto &map)
{
    std::vector<std::string> out;
    for (const auto &[key, value] : map)
        out.push_back(key);
    return join(out, " ");
}

void checkRegistry(const DeviceRegistry &registry, fuzz::FuzzedNames &names, bool comparable, const std::string &after)
{
    const NodeObservation &held = registry.observation();
    Inventory inventory = registry.inventory();
    fuzz::checkInventory(held, inventory);
    FUZZ_CHECK(inventory.resources == deriveInventory(held, registry.healthHistory(), names).resources,
               after + ": the incremental index drifted from its own observation");
    if (!comparable)
        return;
    NodeObservation scanned = scanNode(g_node->sysfs(), g_node->devTree());
    FUZZ_CHECK(keys(held.functions) == keys(scanned.functions), after + ": functions " + keys(held.functions));
    FUZZ_CHECK(keys(held.mdevs) == keys(scanned.mdevs), after + ": mdevs " + keys(held.mdevs));
    FUZZ_CHECK(keys(held.unreadableFunctions) == keys(scanned.unreadableFunctions),
               after + ": unreadable functions " + keys(held.unreadableFunctions));
    FUZZ_CHECK(keys(held.unreadableMdevs) == keys(scanned.unreadableMdevs),
               after + ": unreadable mdevs " + keys(held.unreadableMdevs));
    FUZZ_CHECK(held.vfioGroupNodes == scanned.vfioGroupNodes, after + ": group nodes");
    // Members of the groups that matter: those of functions present now (the
    // registry may also keep the members of a group whose function became
    // unreadable; nothing is judged by them).
    for (const auto &[group, members] : scanned.groups) {
        auto it = held.groups.find(group);
        FUZZ_CHECK(it != held.groups.end() && it->second == members, after + ": members of group " + std::to_string(group));
    }
    FUZZ_CHECK(inventory.resources == deriveInventory(scanned, names).resources, after + ": differs from a rescan");
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    fuzz::quietLogs();
    g_node = new fuzz::FixedNode;
    std::atexit([] { delete g_node; });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    FuzzedDataProvider data(bytes, size);
    fuzz::FuzzedNames names(std::nullopt);
    DeviceRegistry registry(g_node->sysfs(), g_node->devTree(), names);
    registry.rescan();
    NodeChanges changes(data);
    // Recovery events leave a history that sysfs does not show; with them the
    // registry is only compared with itself.
    const bool recoveryEvents = data.ConsumeIntegralInRange(0, 3) == 0;

    for (int step = 0; step < 12 && data.remaining_bytes() > 0; ++step) {
        Uevent event;
        switch (data.ConsumeIntegralInRange(0, 7)) {
        case 0: event = changes.toggleDriver(pick(data, g_node->addresses)); break;
        case 1: event = changes.toggleGroupNode(g_node->groups[data.ConsumeIntegralInRange<size_t>(0, g_node->groups.size() - 1)]); break;
        case 2: event = changes.toggleBusLink("mdev", pick(data, g_node->uuids)); break;
        case 3: event = changes.toggleBusLink("pci", pick(data, g_node->addresses)); break;
        case 4: event = changes.corruptNuma(pick(data, g_node->addresses)); break;
        default: {
            // An event with no change behind it: a replay, a duplicate, or
            // something the kernel would not send.
            static const char *const subsystems[] = {"pci", "mdev", "vfio", "usb", ""};
            event.action = data.ConsumeRandomLengthString(8);
            event.subsystem = subsystems[data.ConsumeIntegralInRange(0, 4)];
            event.sysname = sysname(data);
            break;
        }
        }
        if (recoveryEvents && data.ConsumeBool()) {
            static const char *const recovery[] = {"BEGIN_RECOVERY", "SUCCESSFUL_RECOVERY", "FAILED_RECOVERY", ""};
            event.properties["ERROR_EVENT"] = data.ConsumeBool() ? recovery[data.ConsumeIntegralInRange(0, 3)]
                                                                 : data.ConsumeRandomLengthString(24);
        }
        applyUevent(registry, event);
        checkRegistry(registry, names, !recoveryEvents,
                      event.action + " " + event.subsystem + " " + quoteIfNeeded(event.sysname));
    }
    return 0;
}
