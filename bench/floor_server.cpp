// The floor of the hot-add benchmark: a bare gRPC device plugin that does
// nothing but write ListAndWatch messages it serialised before the clock
// started. It registers one resource with the kubelet, sends the first list,
// then sends the next list each time a byte arrives on its standard input.
// The benchmark times byte written → message read by the kubelet, the same
// span as uevent sent → message read for the plugin, so the ratio of the two
// is what the plugin adds over gRPC and the kubelet's own parsing.
//
// Threading contract: the main thread reads stdin and starts writes; gRPC
// threads run the stream callbacks. The stream state is guarded by one mutex.
//
// Usage: bench-floor-server PLUGIN_DIR RESOURCE LISTS_FILE
// LISTS_FILE: a line with the number N of devices in the first list, N lines
// "<id> <Healthy|Unhealthy> <numa>", then one line per further list with the
// id of the device that list adds (Healthy, NUMA -1), as a hot-add does.
#include "api.grpc.pb.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

struct Device {
    std::string id, health;
    long numa = -1;
};

std::string serialise(std::vector<Device> devices)
{
    std::sort(devices.begin(), devices.end(), [](const Device &a, const Device &b) { return a.id < b.id; });
    v1beta1::ListAndWatchResponse message;
    for (const Device &d : devices) {
        v1beta1::Device *device = message.add_devices();
        device->set_id(d.id);
        device->set_health(d.health);
        if (d.numa >= 0)
            device->mutable_topology()->add_nodes()->set_id(d.numa);
    }
    return message.SerializeAsString();
}

using FloorCallbacks = v1beta1::DevicePlugin::WithCallbackMethod_GetDevicePluginOptions<
    v1beta1::DevicePlugin::WithRawCallbackMethod_ListAndWatch<v1beta1::DevicePlugin::Service>>;

class FloorPlugin final : public FloorCallbacks {
public:
    explicit FloorPlugin(std::vector<grpc::ByteBuffer> messages) : messages_(std::move(messages)) {}

    grpc::ServerUnaryReactor *GetDevicePluginOptions(grpc::CallbackServerContext *context, const v1beta1::Empty *,
                                                     v1beta1::DevicePluginOptions *) override
    {
        auto *reactor = context->DefaultReactor();
        reactor->Finish(grpc::Status::OK);
        return reactor;
    }

    using FloorCallbacks::ListAndWatch;
    grpc::ServerWriteReactor<grpc::ByteBuffer> *ListAndWatch(grpc::CallbackServerContext *,
                                                             const grpc::ByteBuffer *) override
    {
        std::lock_guard lock(mutex_);
        auto *stream = new Stream(this);
        opened_.notify_all();
        return stream;
    }

    // Sends the next message (the first one went out when the stream opened).
    bool sendNext()
    {
        std::lock_guard lock(mutex_);
        if (!stream_ || next_ >= messages_.size())
            return false;
        // gRPC may report the previous write done only after the kubelet read
        // it: then this one starts from OnWriteDone.
        if (writing_)
            ++queued_;
        else
            startWriteLocked();
        return true;
    }

    void startWriteLocked()
    {
        writing_ = true;
        stream_->write(&messages_[next_++]);
    }

    void waitForStream()
    {
        std::unique_lock lock(mutex_);
        opened_.wait(lock, [&] { return stream_ != nullptr; });
    }

private:
    class Stream final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
    public:
        // Constructed with the plugin's mutex held.
        explicit Stream(FloorPlugin *plugin) : plugin_(plugin)
        {
            plugin->stream_ = this;
            plugin->startWriteLocked();
        }
        // Called with the plugin's mutex held; one write at a time.
        void write(const grpc::ByteBuffer *message) { StartWrite(message); }
        void OnWriteDone(bool ok) override
        {
            if (!ok) {
                Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
                return;
            }
            std::lock_guard lock(plugin_->mutex_);
            plugin_->writing_ = false;
            if (plugin_->queued_ > 0 && plugin_->next_ < plugin_->messages_.size()) {
                --plugin_->queued_;
                plugin_->startWriteLocked();
            }
        }
        void OnCancel() override { Finish(grpc::Status::CANCELLED); }
        void OnDone() override
        {
            std::lock_guard lock(plugin_->mutex_);
            if (plugin_->stream_ == this)
                plugin_->stream_ = nullptr;
            delete this;
        }

    private:
        FloorPlugin *plugin_;
    };

    std::vector<grpc::ByteBuffer> messages_;
    std::mutex mutex_;
    std::condition_variable opened_;
    Stream *stream_ = nullptr; // guarded by mutex_
    size_t next_ = 0;          // guarded by mutex_: the next message to write
    bool writing_ = false;     // guarded by mutex_
    int queued_ = 0;           // guarded by mutex_: writes asked for while one was in flight
};

} // namespace

int main(int argc, char **argv)
{
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s PLUGIN_DIR RESOURCE LISTS_FILE\n", argv[0]);
        return 2;
    }
    const std::string pluginDir = argv[1], resource = argv[2];
    std::ifstream lists(argv[3]);
    size_t count = 0;
    if (!(lists >> count)) {
        std::fprintf(stderr, "%s: no device count on the first line\n", argv[3]);
        return 2;
    }
    std::vector<Device> devices(count);
    for (Device &d : devices)
        if (!(lists >> d.id >> d.health >> d.numa)) {
            std::fprintf(stderr, "%s: fewer than %zu devices\n", argv[3], count);
            return 2;
        }
    std::vector<grpc::ByteBuffer> messages;
    auto add = [&] {
        grpc::Slice slice(serialise(devices));
        messages.emplace_back(&slice, 1);
    };
    add();
    for (std::string id; lists >> id;) {
        devices.push_back(Device{id, "Healthy", -1});
        add();
    }

    FloorPlugin plugin(std::move(messages));
    const std::string socket = pluginDir + "/floor.sock";
    ::unlink(socket.c_str());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix://" + socket, grpc::InsecureServerCredentials());
    builder.RegisterService(&plugin);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server) {
        std::fprintf(stderr, "cannot serve %s\n", socket.c_str());
        return 1;
    }
    auto channel = grpc::CreateChannel("unix://" + pluginDir + "/kubelet.sock", grpc::InsecureChannelCredentials());
    auto stub = v1beta1::Registration::NewStub(channel);
    grpc::ClientContext context;
    v1beta1::RegisterRequest request;
    request.set_version("v1beta1");
    request.set_endpoint("floor.sock");
    request.set_resource_name(resource);
    v1beta1::Empty empty;
    grpc::Status status = stub->Register(&context, request, &empty);
    if (!status.ok()) {
        std::fprintf(stderr, "Register refused: %s\n", status.error_message().c_str());
        return 1;
    }
    plugin.waitForStream();

    char byte;
    while (::read(STDIN_FILENO, &byte, 1) == 1)
        if (!plugin.sendNext())
            break;
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    ::unlink(socket.c_str());
    return 0;
}
