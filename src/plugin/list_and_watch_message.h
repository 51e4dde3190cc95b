// The ListAndWatch message of one resource, kept as the bytes it has on the
// wire.
//
// Every ListAndWatch message carries the resource's whole list, so a hot-add
// to a resource of 1,500 devices would otherwise rebuild and re-serialise
// 1,500 protobuf messages. A repeated message field is, on the wire, its
// elements' encodings back to back (each: tag 0x0a, varint length, bytes), so
// a new message is the previous one with the changed devices spliced in: the
// runs of unchanged devices are copied as they are, and only the devices of
// the change (index_changes.h) are encoded afresh. The message knows each
// device's id from its own bytes, so nobody keeps a second copy of the list
// for it. The bytes are sent as they are (see device_plugin_service.h), never
// parsed or re-serialised.
//
// Threading contract: a message is immutable once built and may be read and
// sent from any thread; build() itself touches nothing shared.
#pragma once

#include "index/index_changes.h"
#include "index/resource.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
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
    // Encodes `resource`'s list.
    static std::shared_ptr<const ListAndWatchMessage> build(const Resource &resource);
    // `previous` with `delta` applied: the removed and set devices (each
    // sorted by id) are taken out, the set ones encoded afresh and put in
    // place; every other device's encoding is copied.
    static std::shared_ptr<const ListAndWatchMessage> apply(const ListAndWatchMessage &previous,
                                                            const ResourceDelta &delta);
    // The message for `resource`, built from `previous` (the message of the
    // list `before`) with only the devices whose view changed encoded; from
    // scratch when `previous` does not describe `before`.
    static std::shared_ptr<const ListAndWatchMessage> build(const Resource &resource, const Resource &before,
                                                            const ListAndWatchMessage &previous);

    // The serialised v1beta1.ListAndWatchResponse.
    const std::string &bytes() const { return bytes_; }
    std::size_t deviceCount() const { return ends_.size(); }
    // Devices encoded afresh by build() (the rest were copied).
    std::size_t encodedDevices() const { return encoded_; }

private:
    // The id of device `i`, read from its encoding.
    std::string_view idAt(std::size_t i) const;
    std::size_t beginOf(std::size_t i) const { return i == 0 ? 0 : ends_[i - 1]; }

    std::string bytes_;
    std::vector<std::uint32_t> ends_; // end offset of each device's field in bytes_
    std::size_t encoded_ = 0;
};

// A gRPC byte buffer over the message's bytes, without a copy: the buffer
// keeps the message alive until gRPC has sent it.
grpc::ByteBuffer toByteBuffer(std::shared_ptr<const ListAndWatchMessage> message);

} // namespace kvgpu
