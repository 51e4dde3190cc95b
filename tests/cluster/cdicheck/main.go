// cdicheck resolves CDI device ids against a spec directory with the CDI
// reference library (tags.cncf.io/container-device-interface), as a
// container runtime does before it edits a container's OCI spec, and prints
// what each id brings as JSON:
//
//	cdicheck --spec-dir DIR ID...
//	{"specs": [files loaded], "errors": ["file: error", ...],
//	 "devices": {ID: {"deviceNodes": [...], "mounts": [...], "env": [...]}}}
//
// A device's edits are its spec's plus its own (the library applies both),
// as the library loaded and validated them. They are not applied to an OCI
// spec: that stats each host path, and the bench's device nodes exist only in
// the simulated node's /dev. Exits 1 when an id does not resolve.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"

	"tags.cncf.io/container-device-interface/pkg/cdi"
	specs "tags.cncf.io/container-device-interface/specs-go"
)

type edits struct {
	DeviceNodes []*specs.DeviceNode `json:"deviceNodes"`
	Mounts      []*specs.Mount      `json:"mounts"`
	Env         []string            `json:"env"`
}

type report struct {
	Specs   []string         `json:"specs"`
	Errors  []string         `json:"errors"`
	Devices map[string]edits `json:"devices"`
}

func add(out *edits, e *specs.ContainerEdits) {
	if e == nil {
		return
	}
	out.DeviceNodes = append(out.DeviceNodes, e.DeviceNodes...)
	out.Mounts = append(out.Mounts, e.Mounts...)
	out.Env = append(out.Env, e.Env...)
}

func main() {
	dir := flag.String("spec-dir", "", "the CDI spec directory")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "usage: cdicheck --spec-dir DIR ID...")
		os.Exit(2)
	}
	cache, err := cdi.NewCache(cdi.WithSpecDirs(*dir), cdi.WithAutoRefresh(false))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cdicheck: cache:", err)
	}
	rep := report{Specs: []string{}, Errors: []string{}, Devices: map[string]edits{}}
	for path, errs := range cache.GetErrors() {
		for _, e := range errs {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", path, e))
		}
	}
	sort.Strings(rep.Errors)
	for _, vendor := range cache.ListVendors() {
		for _, spec := range cache.GetVendorSpecs(vendor) {
			rep.Specs = append(rep.Specs, spec.GetPath())
		}
	}
	sort.Strings(rep.Specs)
	failed := false
	for _, id := range flag.Args() {
		dev := cache.GetDevice(id)
		if dev == nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: unresolvable CDI device", id))
			failed = true
			continue
		}
		var e edits
		add(&e, &dev.GetSpec().ContainerEdits)
		add(&e, &dev.ContainerEdits)
		if e.DeviceNodes == nil {
			e.DeviceNodes = []*specs.DeviceNode{}
		}
		if e.Mounts == nil {
			e.Mounts = []*specs.Mount{}
		}
		rep.Devices[id] = e
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "cdicheck:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}
