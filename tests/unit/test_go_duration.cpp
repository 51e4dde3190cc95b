#include "base/go_duration.h"

#include <doctest/doctest.h>

using namespace kvgpu;
using namespace std::chrono_literals;

TEST_CASE("the durations a DaemonSet written for the Go plugin carries parse as Go reads them")
{
    CHECK(*parseGoDuration("30s") == 30s);
    CHECK(*parseGoDuration("1m30s") == 90s);
    CHECK(*parseGoDuration("500ms") == 500ms);
    CHECK(*parseGoDuration("1h") == 1h);
    CHECK(*parseGoDuration("0") == 0ns);
    CHECK(*parseGoDuration("-0") == 0ns);
    CHECK(*parseGoDuration("0s") == 0ns);
    CHECK(*parseGoDuration("1.5s") == 1500ms);
    CHECK(*parseGoDuration(".5s") == 500ms);
    CHECK(*parseGoDuration("1.s") == 1s);
    CHECK(*parseGoDuration("+2m") == 2min);
    CHECK(*parseGoDuration("-1s") == -1s);
    CHECK(*parseGoDuration("1h2m3s4ms5us6ns") == 1h + 2min + 3s + 4ms + 5us + 6ns);
    CHECK(*parseGoDuration("7\xc2\xb5s") == 7us);
    CHECK(*parseGoDuration("7\xce\xbcs") == 7us);
    CHECK(parseGoDuration("2562047h47m16.854775807s")->count() == INT64_MAX);
    CHECK(parseGoDuration("-2562047h47m16.854775808s")->count() == INT64_MIN);
}

TEST_CASE("garbage is an error that quotes it and shows what is meant")
{
    for (const char *bad : {"", "30", "s", "1x", "1 s", " 1s", "1s ", ".s", "-", "+", "1..5s", "1.5.5s", "1S", "1sec",
                            "ten seconds", "2562047h47m16.854775808s", "9223372036854775808ns",
                            "99999999999999999999h"}) {
        CAPTURE(bad);
        Result<std::chrono::nanoseconds> parsed = parseGoDuration(bad);
        REQUIRE_FALSE(parsed.ok());
        CHECK(parsed.error().find("invalid duration") == 0);
        CHECK(parsed.error().find("examples: 30s") != std::string::npos);
    }
    CHECK(parseGoDuration("1x").error().find("unknown unit x") != std::string::npos);
    CHECK(parseGoDuration("30").error().find("missing unit") != std::string::npos);
}

TEST_CASE("an interval setting is a Go duration or plain seconds, never negative")
{
    CHECK(*parseIntervalSetting("1s") == 1000ms);
    CHECK(*parseIntervalSetting("30") == 30s);
    CHECK(*parseIntervalSetting("0") == 0ms);
    CHECK(*parseIntervalSetting("250us") == 1ms); // rounded up: a tick never becomes 0 (off)
    CHECK(*parseIntervalSetting(" 2m ") == 2min);
    CHECK(parseIntervalSetting("-1s").error().find("negative") != std::string::npos);
    CHECK(parseIntervalSetting("soon").error().find("invalid duration") == 0);
    CHECK_FALSE(parseIntervalSetting("").ok());
}
