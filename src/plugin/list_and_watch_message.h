// The ListAndWatch message of one resource, kept as the bytes it has on the
// wire.
//
// Every ListAndWatch message carries the resource's whole list, so a hot-add
// to a resource of 1,500 devices would otherwise rebuild and re-serialise
// 1,500 protobuf messages. A repeated message field is, on the wire, its
// elements' encodings back to back (each: tag 0x0a, varint length, bytes), so
// the message is built by concatenation: the encoding of a device whose view
// (id, health, NUMA node) is unchanged since the previous list is copied from
// the previous message, and only changed devices are encoded afresh. The
// bytes are sent as they are (see device_plugin_service.h), never parsed or
// re-serialised.
//
// Threading contract: a message is immutable once built and may be read and
// sent from any thread; build() itself touches nothing shared.
#pragma once

#include "index/resource.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace grpc {
class ByteBuffer;
}

namespace kvgpu {

// Whether two devices look the same in ListAndWatch (id, health, topology).
bool sameListAndWatchView(const AdvertisedDevice &a, const AdvertisedDevice &b);
// Whether two lists give the same ListAndWatch message.
bool sameListAndWatchView(const Resource &a, const Resource &b);

class ListAndWatchMessage {
public:
    // Encodes `resource`'s list. With `previous` (the message built for the
    // list `before` of the same resource), the devices whose view did not
    // change are copied from it.
    static std::shared_ptr<const ListAndWatchMessage> build(const Resource &resource);
    static std::shared_ptr<const ListAndWatchMessage> build(const Resource &resource, const Resource &before,
                                                            const ListAndWatchMessage &previous);

    // The serialised v1beta1.ListAndWatchResponse.
    const std::string &bytes() const { return bytes_; }
    std::size_t deviceCount() const { return ends_.size(); }
    // Devices encoded afresh by build() (the rest were copied).
    std::size_t encodedDevices() const { return encoded_; }

private:
    std::string bytes_;
    std::vector<std::uint32_t> ends_; // end offset of each device's field in bytes_
    std::size_t encoded_ = 0;
};

// A gRPC byte buffer over the message's bytes, without a copy: the buffer
// keeps the message alive until gRPC has sent it.
grpc::ByteBuffer toByteBuffer(std::shared_ptr<const ListAndWatchMessage> message);

} // namespace kvgpu
