// Result<T, E>: a value or an error, for functions whose failure is an
// expected outcome (a malformed sysfs file, a missing link, a request the
// kubelet should not have sent) rather than a bug. This is the project's one
// error convention: functions that can fail return a Result; callers that only
// report the failure read error() (the message); callers that branch on what
// went wrong use a typed E (an enum `code` beside the `message`) and read
// failure(). Exceptions are for bugs and are never thrown across libuv or gRPC
// callbacks.
//
// E must have a `std::string message` member.
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
