// Result<T>: a value or a human-readable error, for functions whose failure is
// an expected outcome (a malformed sysfs file, a missing link) rather than a bug.
//
// Thread safety: a plain value type; no shared state.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace kvgpu {

struct Error {
    std::string message;
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : value_(std::move(value)) {}
    Result(Error error) : error_(std::move(error.message)) {}

    bool ok() const { return value_.has_value(); }
    explicit operator bool() const { return ok(); }

    const T &value() const & { assert(ok()); return *value_; }
    T &value() & { assert(ok()); return *value_; }
    T &&value() && { assert(ok()); return std::move(*value_); }
    const T &operator*() const & { return value(); }
    const T *operator->() const { return &value(); }

    const std::string &error() const { return error_; }

private:
    std::optional<T> value_;
    std::string error_;
};

} // namespace kvgpu
