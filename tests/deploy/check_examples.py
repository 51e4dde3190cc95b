#!/usr/bin/python3
"""The KubeVirt examples work with the plugin: every permitted device is
served by an external provider under the name the plugin really produces for
its selector, and the VMs ask only for permitted resources.

The names are not taken from a table: the check builds a small fake node
(sysfs and /dev) holding one device per selector, runs the plugin's `list`
on it and reads the resource names it prints."""

import json
import os
import re
import tempfile

from deploy_common import (Findings, check_parses, objects_of_kind, plugin_binary, resource_name_problem, run,
                           source_path)

f = Findings("examples")
binary = plugin_binary()

check_parses(f, ["examples"])
crs = objects_of_kind("KubeVirt", ["examples"])
vms = objects_of_kind("VirtualMachine", ["examples"])
f.check(len(crs) == 1, f"examples/ holds one KubeVirt CR (found {len(crs)})")
f.check(len(vms) >= 2, f"examples/ holds the passthrough and the vGPU VM (found {len(vms)} VirtualMachines)")
if len(crs) != 1:
    f.finish()
cr_file, cr = crs[0]

f.check(cr.get("apiVersion") == "kubevirt.io/v1", f"{cr_file}: apiVersion kubevirt.io/v1")
permitted = cr.get("spec", {}).get("configuration", {}).get("permittedHostDevices", {})
pci = permitted.get("pciHostDevices", [])
mdevs = permitted.get("mediatedDevices", [])
f.check(pci, f"{cr_file}: permits at least one passthrough GPU (pciHostDevices)")
f.check(mdevs, f"{cr_file}: permits at least one vGPU type (mediatedDevices)")

with open(source_path(cr_file), encoding="utf-8") as text:
    raw = text.read()
f.check(re.search(r"WARNING.*DELETE", raw, re.S | re.I) and "mediatedDevicesConfiguration" in raw,
        f"{cr_file}: warns that KubeVirt deletes every mdev whose type is not listed")

for entry in pci + mdevs:
    f.check(entry.get("externalResourceProvider") is True,
            f"{cr_file}: {entry.get('resourceName')} has externalResourceProvider: true")
    problem = resource_name_problem(entry.get("resourceName"))
    f.check(problem is None, f"{cr_file}: the kubelet accepts resource name {entry.get('resourceName')!r} ({problem})")
for entry in pci:
    f.check(re.fullmatch(r"[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}", str(entry.get("pciVendorSelector", ""))),
            f"{cr_file}: pciVendorSelector {entry.get('pciVendorSelector')!r} is VENDOR:DEVICE in hex")
    f.check(str(entry.get("pciVendorSelector", "")).upper().startswith("10DE:"),
            f"{cr_file}: pciVendorSelector {entry.get('pciVendorSelector')!r} is an NVIDIA device")
for entry in mdevs:
    f.check(isinstance(entry.get("mdevNameSelector"), str) and entry["mdevNameSelector"].strip(),
            f"{cr_file}: mediatedDevices entry {entry.get('resourceName')} has an mdevNameSelector")


# --- what the plugin names each selector ----------------------------------------------
def write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(content)


def link(path, target):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)


def add_pci_function(root, bus, vendor, device, driver, group):
    """A PCI function 0000:<bus>:00.0 under its own root port."""
    address = f"0000:{bus:02x}:00.0"
    devpath = f"devices/pci0000:{bus:02x}/{address}"
    directory = os.path.join(root, "sys", devpath)
    write(os.path.join(directory, "vendor"), f"0x{vendor}\n")
    write(os.path.join(directory, "device"), f"0x{device}\n")
    write(os.path.join(directory, "class"), "0x030200\n")
    write(os.path.join(directory, "numa_node"), "-1\n")
    write(os.path.join(directory, "uevent"), f"DRIVER={driver}\nPCI_ID={vendor.upper()}:{device.upper()}\n"
                                             f"PCI_SLOT_NAME={address}\n")
    link(os.path.join(directory, "subsystem"), "../../../bus/pci")
    os.makedirs(os.path.join(root, "sys/bus/pci/drivers", driver), exist_ok=True)
    link(os.path.join(directory, "driver"), f"../../../bus/pci/drivers/{driver}")
    os.makedirs(os.path.join(root, "sys/kernel/iommu_groups", str(group)), exist_ok=True)
    link(os.path.join(directory, "iommu_group"), f"../../../kernel/iommu_groups/{group}")
    link(os.path.join(root, "sys/bus/pci/devices", address), f"../../../{devpath}")
    write(os.path.join(root, "dev/vfio", str(group)), "")
    return address, devpath


def add_mdev(root, parent_devpath, type_id, type_name, uuid, group):
    parent = os.path.join(root, "sys", parent_devpath)
    write(os.path.join(parent, "mdev_supported_types", type_id, "name"), type_name + "\n")
    directory = os.path.join(parent, uuid)
    write(os.path.join(directory, "uevent"), "DRIVER=nvidia-vgpu-vfio\nMDEV_TYPE=" + type_id + "\n")
    link(os.path.join(directory, "subsystem"), "../../../../bus/mdev")
    link(os.path.join(directory, "mdev_type"), f"../mdev_supported_types/{type_id}")
    os.makedirs(os.path.join(root, "sys/kernel/iommu_groups", str(group)), exist_ok=True)
    link(os.path.join(directory, "iommu_group"), f"../../../../kernel/iommu_groups/{group}")
    os.makedirs(os.path.join(root, "sys/bus/mdev/drivers/nvidia-vgpu-vfio"), exist_ok=True)
    link(os.path.join(directory, "driver"), "../../../../bus/mdev/drivers/nvidia-vgpu-vfio")
    link(os.path.join(root, "sys/bus/mdev/devices", uuid), f"../../../{parent_devpath}/{uuid}")
    write(os.path.join(root, "dev/vfio", str(group)), "")


with tempfile.TemporaryDirectory(prefix="kvgpu-deploy-") as root:
    os.makedirs(os.path.join(root, "dev/vfio"))
    write(os.path.join(root, "dev/vfio/vfio"), "")
    expected = {}  # device id on the fake node -> (selector description, resourceName in the CR)
    for n, entry in enumerate(pci):
        vendor, _, device = str(entry.get("pciVendorSelector", "")).lower().partition(":")
        name = str(entry.get("resourceName", ""))
        # SR-IOV vGPU profiles ("NVIDIA H200X-1-18C") name VFs that stay on
        # nvidia; every other entry is a passthrough GPU on vfio-pci.
        sriov = name.startswith("nvidia.com/NVIDIA_")
        address, devpath = add_pci_function(root, 0x10 + n, vendor, device, "nvidia" if sriov else "vfio-pci", 100 + n)
        if sriov:
            pf = f"0000:{0x80 + n:02x}:00.0"
            add_pci_function(root, 0x80 + n, vendor, device, "nvidia", 150 + n)
            write(os.path.join(root, "sys/devices", f"pci0000:{0x80 + n:02x}", pf, "sriov_totalvfs"), "16\n")
            link(os.path.join(root, "sys", devpath, "physfn"), f"../../pci0000:{0x80 + n:02x}/{pf}")
            profile = name[len("nvidia.com/"):].replace("_", " ")
            write(os.path.join(root, "sys", devpath, "nvidia/current_vgpu_type"), f"{1400 + n}\n")
            write(os.path.join(root, "sys", devpath, "nvidia/creatable_vgpu_types"),
                  f"ID    : vGPU Name\n{1400 + n:<5} : {profile}\n")
        expected[address] = (f"pciVendorSelector {entry.get('pciVendorSelector')}", entry.get("resourceName"))
    if mdevs:
        _, parent = add_pci_function(root, 0xf0, "10de", "1eb8", "nvidia", 200)
        for n, entry in enumerate(mdevs):
            uuid = f"00000000-0000-4000-8000-{n:012d}"
            add_mdev(root, parent, f"nvidia-{300 + n}", str(entry.get("mdevNameSelector")), uuid, 300 + n)
            expected[uuid] = (f"mdevNameSelector {entry.get('mdevNameSelector')!r}", entry.get("resourceName"))

    listed = run([binary, "list", "--json", "--sysfs-root", os.path.join(root, "sys"),
                  "--dev-root", os.path.join(root, "dev")], timeout=60)
    produced = {}
    if f.check(listed.returncode == 0, f"`list` runs on the fake node: {listed.stderr.strip()}"):
        for row in json.loads(listed.stdout)["devices"]:
            produced[row["id"]] = row.get("resource") or f"(not advertised: {row.get('reason')})"
    for device_id, (selector, name) in expected.items():
        f.check(produced.get(device_id) == name,
                f"{cr_file}: {selector} is advertised by the plugin as {produced.get(device_id)}, the CR says {name}")

# --- the VMs ask only for permitted resources -----------------------------------------------
names = {e.get("resourceName") for e in pci + mdevs}
asked = set()
for vm_file, vm in vms:
    f.check(vm.get("apiVersion") == "kubevirt.io/v1", f"{vm_file}: apiVersion kubevirt.io/v1")
    devices = vm.get("spec", {}).get("template", {}).get("spec", {}).get("domain", {}).get("devices", {})
    entries = devices.get("gpus", []) + devices.get("hostDevices", [])
    f.check(entries, f"{vm_file}: the VM asks for a GPU (devices.gpus or devices.hostDevices)")
    entry_names = [e.get("name") for e in entries]
    f.check(len(set(entry_names)) == len(entry_names) and all(entry_names),
            f"{vm_file}: device entries have unique names")
    for e in entries:
        asked.add(e.get("deviceName"))
        f.check(e.get("deviceName") in names, f"{vm_file}: deviceName {e.get('deviceName')} is permitted in {cr_file}")
f.check(asked & {e.get("resourceName") for e in pci}, "one example VM asks for a passthrough GPU")
f.check(asked & {e.get("resourceName") for e in mdevs}, "one example VM asks for a vGPU")

f.finish()
