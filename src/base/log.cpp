#include "base/log.h"

#include "base/strings.h"

#include <atomic>
#include <chrono>
#include <ctime>
#include <unistd.h>

#include <fmt/format.h>

namespace kvgpu::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::Info)};

const char *levelName(Level level)
{
    switch (level) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
    }
    return "info";
}
} // namespace

std::optional<Level> parseLevel(std::string_view name)
{
    for (Level l : {Level::Debug, Level::Info, Level::Warn, Level::Error})
        if (name == levelName(l))
            return l;
    if (name == "warning")
        return Level::Warn;
    return std::nullopt;
}

void setLevel(Level level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

bool enabled(Level level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

std::string formatLine(Level level, std::string_view message, std::initializer_list<Field> fields)
{
    using namespace std::chrono;
    auto now = system_clock::now();
    std::time_t secs = system_clock::to_time_t(now);
    auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm utc{};
    gmtime_r(&secs, &utc);

    std::string line = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z level={} msg={}",
                                   utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                                   utc.tm_min, utc.tm_sec, millis, levelName(level),
                                   quoteIfNeeded(message));
    for (const Field &field : fields) {
        line += ' ';
        line += field.key;
        line += '=';
        line += quoteIfNeeded(field.value);
    }
    line += '\n';
    return line;
}

void write(Level level, std::string_view message, std::initializer_list<Field> fields)
{
    if (!enabled(level))
        return;
    std::string line = formatLine(level, message, fields);
    // A short write to stderr is not worth retrying: logging must never block
    // or fail the caller.
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

} // namespace kvgpu::log
