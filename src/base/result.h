// Result<T, E>: a value or an error, for functions whose failure is an
// expected outcome (a malformed sysfs file, a missing link, a request the
// kubelet should not have sent) rather than a bug. Callers that only report
// the failure read error() (the message); callers that branch on what went
// wrong use a typed E (an enum `code` beside the `message`) and read
// failure(). E must have a `std::string message` member.
//
// The ways this code says "it failed", and where each is used:
//  - Result<T> / Result<T, E>: everything that can fail, including factories
//    (Result<std::unique_ptr<T>>: a constructor cannot fail, so a class whose
//    creation can has a static create() or start()).
//  - Result<void>: a step that yields nothing but can fail (`return {};`).
//  - std::optional<T>: a value that may legitimately be absent (a name that
//    pci.ids does not know, a file that a kernel does not have); absence is
//    not an error and carries no message.
//  - a libuv status (0 or a negative UV_E* code) from the thin handle wrappers
//    in loop/: they mirror libuv's own calls, and their callers log
//    uv_strerror() of it.
//  - a problem recorded in the observation (NodeObservation keeps each
//    unreadable device with what is wrong with it): a device that cannot be
//    read is a fact about the node, listed and skipped, not a failure of the
//    scan.
// Exceptions are for bugs, are caught by the loop's trampoline and never
// thrown across libuv or gRPC callbacks. Two libraries throw by design and
// are caught at their edge: yaml-cpp (config_parser.cpp, which also uses one
// internal exception to unwind a refused document to that edge) and
// civetweb's port errors (metrics_server.cpp).
//
// Thread safety: a plain value type; no shared state.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace kvgpu {

// The untyped error: a message naming what failed and why.
struct Error {
    std::string message;
};

template <typename T, typename E = Error>
class [[nodiscard]] Result {
public:
    Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    Result(E error) : state_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const { return state_.index() == 0; }
    explicit operator bool() const { return ok(); }

    const T &value() const & { assert(ok()); return std::get<0>(state_); }
    T &value() & { assert(ok()); return std::get<0>(state_); }
    T &&value() && { assert(ok()); return std::get<0>(std::move(state_)); }
    const T &operator*() const & { return value(); }
    T &operator*() & { return value(); }
    const T *operator->() const { return &value(); }
    T *operator->() { return &value(); }

    // The typed error; only when !ok().
    const E &failure() const { assert(!ok()); return std::get<1>(state_); }
    // The error's message; empty when ok().
    const std::string &error() const
    {
        static const std::string none;
        return ok() ? none : std::get<1>(state_).message;
    }

private:
    std::variant<T, E> state_;
};

// For a step that yields nothing but can fail: `return {};` is success.
template <typename E>
class [[nodiscard]] Result<void, E> {
public:
    Result() = default;
    Result(E error) : error_(std::move(error)) {}

    bool ok() const { return !error_.has_value(); }
    explicit operator bool() const { return ok(); }

    const E &failure() const { assert(!ok()); return *error_; }
    const std::string &error() const
    {
        static const std::string none;
        return ok() ? none : error_->message;
    }

private:
    std::optional<E> error_;
};

} // namespace kvgpu
