// Upper bounds on waits in tests, scaled for the sanitizer stages: ASan and
// TSan make the daemon 3-10x slower, and the test command sets
// KVGPU_TIMEOUT_MULTIPLIER for them. A bound is a promise of the README ("exits
// within a second"), not a measurement: measurements belong in the benchmarks.
#pragma once

#include <chrono>
#include <cstdlib>

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

} // namespace kvgpu::test
