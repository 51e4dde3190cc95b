// fakecri serves upstream's fake container runtime (k8s.io/cri-client/pkg/fake)
// on a unix socket for a real kubelet, and writes one JSON line per
// CreateContainerRequest to a record file: what a container would have
// received (environment, device nodes, CDI device names, mounts). The cluster
// stories read that file to check what the device plugin's Allocate answer
// became after the kubelet turned it into a container config.
//
// What it changes in the fake, each for a reason found on the bench:
//   - images have a non-zero size: the kubelet refuses an image of size 0;
//   - pod sandboxes get 127.0.0.1: the fake's default is a private-range
//     address, which the kubelet then probes (no test may send traffic off
//     this machine);
//   - the runtime reports the cgroupfs driver, as the kubelet is configured;
//   - a container's status carries the log path the kubelet asked for: the
//     fake leaves it empty, and the kubelet deletes container logs by a glob
//     on that path, which then matches the files of its working directory.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	apitest "k8s.io/cri-api/pkg/apis/testing"
	"k8s.io/cri-client/pkg/fake"
)

// containerRecord is one line of the record file.
type containerRecord struct {
	Time        string            `json:"time"`
	SandboxID   string            `json:"sandbox_id"`
	ContainerID string            `json:"container_id"`
	Namespace   string            `json:"namespace"`
	Pod         string            `json:"pod"`
	PodUID      string            `json:"pod_uid"`
	Container   string            `json:"container"`
	Attempt     uint32            `json:"attempt"`
	Image       string            `json:"image"`
	Env         map[string]string `json:"env"`
	Devices     []deviceRecord    `json:"devices"`
	CDIDevices  []string          `json:"cdi_devices"`
	Mounts      []mountRecord     `json:"mounts"`
	Args        []string          `json:"args"`
}

type deviceRecord struct {
	ContainerPath string `json:"container_path"`
	HostPath      string `json:"host_path"`
	Permissions   string `json:"permissions"`
}

type mountRecord struct {
	ContainerPath string `json:"container_path"`
	HostPath      string `json:"host_path"`
	ReadOnly      bool   `json:"readonly"`
}

// recordingRuntime is the fake with CreateContainer wrapped; every other call
// goes to the fake unchanged.
type recordingRuntime struct {
	*fake.RemoteRuntime
	mu     sync.Mutex
	record *os.File
}

func (r *recordingRuntime) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	resp, err := r.RemoteRuntime.CreateContainer(ctx, req)
	if err != nil {
		return nil, err
	}
	cfg := req.GetConfig()
	sandbox := req.GetSandboxConfig()
	logPath := ""
	if sandbox.GetLogDirectory() != "" && cfg.GetLogPath() != "" {
		logPath = filepath.Join(sandbox.GetLogDirectory(), cfg.GetLogPath())
	}
	svc := r.RemoteRuntime.RuntimeService
	svc.Lock()
	if c, ok := svc.Containers[resp.ContainerId]; ok {
		c.ContainerStatus.LogPath = logPath
	}
	svc.Unlock()

	rec := containerRecord{
		Time:        time.Now().UTC().Format(time.RFC3339Nano),
		SandboxID:   req.GetPodSandboxId(),
		ContainerID: resp.ContainerId,
		Namespace:   sandbox.GetMetadata().GetNamespace(),
		Pod:         sandbox.GetMetadata().GetName(),
		PodUID:      sandbox.GetMetadata().GetUid(),
		Container:   cfg.GetMetadata().GetName(),
		Attempt:     cfg.GetMetadata().GetAttempt(),
		Image:       cfg.GetImage().GetImage(),
		Env:         map[string]string{},
		Devices:     []deviceRecord{},
		CDIDevices:  []string{},
		Mounts:      []mountRecord{},
		Args:        append(append([]string{}, cfg.GetCommand()...), cfg.GetArgs()...),
	}
	for _, kv := range cfg.GetEnvs() {
		rec.Env[kv.GetKey()] = string(kv.GetValue())
	}
	for _, d := range cfg.GetDevices() {
		rec.Devices = append(rec.Devices, deviceRecord{d.GetContainerPath(), d.GetHostPath(), d.GetPermissions()})
	}
	sort.Slice(rec.Devices, func(i, j int) bool { return rec.Devices[i].ContainerPath < rec.Devices[j].ContainerPath })
	for _, d := range cfg.GetCDIDevices() {
		rec.CDIDevices = append(rec.CDIDevices, d.GetName())
	}
	for _, m := range cfg.GetMounts() {
		rec.Mounts = append(rec.Mounts, mountRecord{m.GetContainerPath(), m.GetHostPath(), m.GetReadonly()})
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("recording the container: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// One write per line, so a reader never sees half a record.
	if _, err := r.record.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("recording the container: %w", err)
	}
	return resp, nil
}

func main() {
	listen := flag.String("listen", "", "unix socket path to serve the CRI on")
	recordPath := flag.String("record", "", "file that receives one JSON line per CreateContainerRequest")
	podIP := flag.String("pod-ip", "127.0.0.1", "the IP address every pod sandbox reports (keep it on loopback)")
	imageSize := flag.Uint64("image-size", 1<<20, "the size every image reports, in bytes (0 is refused by the kubelet)")
	flag.Parse()
	if *listen == "" || *recordPath == "" {
		fmt.Fprintln(os.Stderr, "usage: fakecri --listen SOCKET --record FILE")
		os.Exit(2)
	}
	ip := net.ParseIP(*podIP)
	if ip == nil || !ip.IsLoopback() {
		log.Fatalf("--pod-ip %q is not a loopback address", *podIP)
	}

	record, err := os.OpenFile(*recordPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		log.Fatalf("opening the record file: %v", err)
	}

	apitest.FakePodSandboxIPs = []string{*podIP}
	rt := fake.NewFakeRemoteRuntime()
	rt.ImageService.SetFakeImageSize(*imageSize)
	rt.RuntimeService.FakeLinuxConfiguration = &runtimeapi.LinuxRuntimeConfiguration{
		CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS,
	}
	rt.RuntimeService.FakeStatus = &runtimeapi.RuntimeStatus{
		Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			{Type: runtimeapi.NetworkReady, Status: true},
		},
	}
	rec := &recordingRuntime{RemoteRuntime: rt, record: record}

	_ = os.Remove(*listen)
	lis, err := net.Listen("unix", *listen)
	if err != nil {
		log.Fatalf("listening on %s: %v", *listen, err)
	}
	server := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(server, rec)
	runtimeapi.RegisterImageServiceServer(server, rec)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		server.Stop()
	}()
	log.Printf("fake CRI listening on %s, recording to %s", *listen, *recordPath)
	if err := server.Serve(lis); err != nil {
		log.Fatalf("serving: %v", err)
	}
	_ = record.Close()
}
