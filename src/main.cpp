// kubevirt-gpu-device-plugin: wiring only. `serve` (the default) runs the
// daemon; `list` prints what one scan finds and why each device is or is not
// advertised; `check-config` validates a resource configuration for this node.
#include "app/check_config_command.h"
#include "app/daemon.h"
#include "app/list_command.h"
#include "app/options.h"
#include "base/go_duration.h"
#include "base/log.h"

#include <cstdlib>

#include <CLI/CLI.hpp>

#include <cstdlib>

#ifndef KVGPU_VERSION
#define KVGPU_VERSION "unknown"
#endif

int main(int argc, char **argv)
{
    using namespace kvgpu;
    CommonOptions common;
    ServeOptions serve;
    std::string logLevel = "info";
    bool json = false;
    std::string checkedConfig;
    if (const char *node = std::getenv("NODE_NAME"))
        common.nodeName = node;
    serve.version = KVGPU_VERSION;

    CLI::App app{"Device plugin that passes NVIDIA GPUs and vGPUs through to KubeVirt virtual machines.\n"
                 "Without a subcommand it serves the kubelet device plugin API (the DaemonSet's job)."};
    app.set_version_flag("--version", std::string("kubevirt-gpu-device-plugin ") + KVGPU_VERSION);
    app.option_defaults()->always_capture_default();
    app.add_option("--sysfs-root", common.sysfsRoot, "Root of the sysfs tree to read");
    app.add_option("--dev-root", common.devRoot, "Root of the device tree; VFIO nodes are DIR/vfio/..., DIR/iommu");
    app.add_option("--plugin-dir", common.pluginDir, "The kubelet's device plugin directory (holds kubelet.sock)");
    app.add_option("--pci-ids", common.pciIds, "pci.ids database used to name passthrough resources");
    app.add_option("--log-level", logLevel, "Log level")
        ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
    app.add_option("--config", common.configPath,
                   "Resource configuration (YAML): rules that rename or exclude devices, globally and per node; "
                   "re-read when it changes. Without it, resources keep the original plugin's names");
    app.add_option("--node-name", common.nodeName,
                   "Node name that chooses the configuration's per-node rules (default: $NODE_NAME)");
    app.add_option("--udev-source", serve.udevSource,
                   "Uevent source: 'kernel' (raw kernel events; works in a pod without udevd) or 'udev'")
        ->check(CLI::IsMember({"kernel", "udev"}));
    app.add_option("--uevent-buffer", serve.ueventBufferBytes, "Receive buffer of the uevent socket, in bytes")
        ->check(CLI::Range(4096, 1 << 30));

    app.add_option("--probe-port", serve.probePort,
                   "TCP port of the gRPC health service for Kubernetes probes (services 'liveness' and "
                   "'readiness'); 0 disables it")
        ->check(CLI::Range(0, 65535));

    app.add_option("--metrics-port", serve.metricsPort,
                   "TCP port of the Prometheus metrics endpoint (/metrics); 0 disables it")
        ->check(CLI::Range(0, 65535));

    app.add_option("--health-interval", serve.healthIntervalSeconds,
                   "Seconds between re-reads of the health signals that change without a uevent (power "
                   "state, config space, AER counters); 0 disables them")
        ->check(CLI::Range(0, 86400));

    app.add_option("--state-dir", common.stateDir,
                   "Directory where the plugin keeps what it learned (SR-IOV vGPU profile names), so a restart "
                   "on a fully configured node still names its VFs; empty: memory only");
    std::string profileInterval = "1s";
    CLI::Option *profileIntervalOption =
        app.add_option("--vgpu-profile-interval", profileInterval,
                       "How often the current_vgpu_type of every nvidia-bound SR-IOV VF is re-read (profile "
                       "writes send no uevent): a Go duration (500ms, 1s, 30s) or seconds; 0 disables it. "
                       "Default from VFIO_VGPU_RESCAN_INTERVAL when that is set");

    app.add_option("--kubeconfig", serve.dra.kubeconfig,
                   "DRA: kubeconfig for the API server (outside a pod); in a pod the service account is used");
    app.add_option("--dra-driver-name", serve.dra.driverName,
                   "DRA: the driver name of this node's ResourceSlices, DeviceClasses and CDI specs (a DNS "
                   "subdomain)");
    app.add_option("--cdi-dir", serve.dra.cdiDir, "DRA: where the CDI specs of prepared claims are written");
    app.add_option("--kubelet-registry-dir", serve.dra.registryDir,
                   "DRA: the kubelet's plugin registry (the registration socket goes here)");
    app.add_option("--kubelet-plugins-dir", serve.dra.pluginsDir,
                   "DRA: the kubelet's plugins directory; dra.sock, the checkpoint and the device metadata "
                   "go to DIR/<driver>");

    CLI::App *list = app.add_subcommand("list", "Scan once and print every NVIDIA PCI function and mdev, with the "
                                                "resource it is advertised under or why it is not");
    list->add_flag("--json", json, "Print JSON instead of a table");
    list->fallthrough();
    CLI::App *checkConfig = app.add_subcommand(
        "check-config", "Validate a resource configuration and print, for this node, every device with the "
                        "resource it would get and the rule that decided it");
    checkConfig->add_option("FILE", checkedConfig, "The configuration to check")->required();
    checkConfig->fallthrough();
    app.require_subcommand(0, 1);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        return app.exit(e);
    }
    common.logLevel = *log::parseLevel(logLevel);
    log::setLevel(common.logLevel);
    // The Go plugin's knob, so that its DaemonSets carry over; the flag wins.
    const char *rescanEnv = std::getenv("VFIO_VGPU_RESCAN_INTERVAL");
    bool fromEnv = profileIntervalOption->count() == 0 && rescanEnv && *rescanEnv;
    Result<std::chrono::milliseconds> interval = parseIntervalSetting(fromEnv ? rescanEnv : profileInterval);
    if (!interval) {
        log::error(fromEnv ? "VFIO_VGPU_RESCAN_INTERVAL is not a valid interval"
                           : "--vgpu-profile-interval is not a valid interval",
                   {{"error", interval.error()}});
        return 2;
    }
    serve.vgpuProfileInterval = *interval;
    if (Result<void> driver = dra::checkDriverName(serve.dra.driverName); !driver) {
        log::error("--dra-driver-name is not valid", {{"error", driver.error()}});
        return 2;
    }

    if (list->parsed())
        return runListCommand(common, json);
    if (checkConfig->parsed())
        return runCheckConfigCommand(common, checkedConfig);
    return runDaemon(common, serve);
}
