// Upper bounds on waits in tests, scaled for the sanitizer stages: ASan and
// TSan make the daemon 3-10x slower, and the test command sets
// KVGPU_TIMEOUT_MULTIPLIER for them. A bound is a promise of the README ("exits
// within a second"), not a measurement: measurements belong in the benchmarks.
#pragma once

#include <chrono>
#include <cstdlib>
#include <thread>

namespace kvgpu::test {

inline double timeoutMultiplier()
{
    const char *text = std::getenv("KVGPU_TIMEOUT_MULTIPLIER");
    double value = text ? std::atof(text) : 1.0;
    return value >= 1.0 ? value : 1.0;
}

inline std::chrono::milliseconds scaled(std::chrono::milliseconds bound)
{
    return std::chrono::milliseconds(static_cast<long long>(static_cast<double>(bound.count()) * timeoutMultiplier()));
}

// Polls `fact` until it holds or `bound` (scaled) passes; whether it held.
// Only for what no event announces (a probe's or a scrape's answer): a
// change that the plugin makes has its own signal to wait on.
template <typename Fact>
bool eventually(Fact fact, std::chrono::milliseconds bound = std::chrono::seconds(5))
{
    const auto deadline = std::chrono::steady_clock::now() + scaled(bound);
    while (!fact()) {
        if (std::chrono::steady_clock::now() > deadline)
            return fact();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

} // namespace kvgpu::test
