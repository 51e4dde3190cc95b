#include "loop/event_loop.h"
#include "monitor/directory_watch.h"
#include "temp_tree.h"
#include "timeouts.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <stdexcept>
#include <thread>
#include <unistd.h>

using namespace kvgpu;

TEST_CASE("tasks posted from other threads all run on the loop, and the loop closes clean")
{
    EventLoop loop;
    int ran = 0;
    std::thread::id loopThread = std::this_thread::get_id();
    bool allOnLoop = true;
    std::vector<std::thread> posters;
    for (int t = 0; t < 4; ++t)
        posters.emplace_back([&] {
            for (int i = 0; i < 250; ++i)
                loop.post([&] {
                    allOnLoop = allOnLoop && std::this_thread::get_id() == loopThread;
                    if (++ran == 1000)
                        loop.stop();
                });
        });
    for (auto &t : posters)
        t.join();
    loop.run();
    CHECK(ran == 1000);
    CHECK(allOnLoop);
    CHECK(loop.close() == 0);
}

TEST_CASE("posts after close are dropped, even through a kept inbox")
{
    std::shared_ptr<Inbox> inbox;
    bool ran = false;
    {
        EventLoop loop;
        inbox = loop.inbox();
        CHECK(loop.close() == 0);
    }
    inbox->post([&] { ran = true; });
    CHECK_FALSE(ran);
}

TEST_CASE("timers fire and every handle is freed on close")
{
    EventLoop loop;
    int fired = 0;
    {
        Timer timer(loop);
        timer.start(1, 0, [&] {
            ++fired;
            loop.stop();
        });
        loop.run();
        CHECK(timer.active() == false);
    }
    CHECK(fired == 1);
    CHECK(loop.close() == 0);
}

TEST_CASE("a directory watch reports created and deleted names")
{
    kvgpu::test::TempTree dir;
    EventLoop loop;
    std::vector<std::string> seen;
    auto created = DirectoryWatch::create(loop, dir.root(), [&](DirectoryWatch::Change change, const std::string &name) {
        seen.push_back((change == DirectoryWatch::Change::Created ? "+" : "-") + name);
        if (seen.size() == 2)
            loop.stop();
    });
    REQUIRE(created);
    std::unique_ptr<DirectoryWatch> watch = std::move(created).value();
    dir.write("kubelet.sock", "");
    dir.remove("kubelet.sock");
    loop.run();
    CHECK(seen == std::vector<std::string>{"+kubelet.sock", "-kubelet.sock"});
    watch.reset();
    CHECK(loop.close() == 0);

    EventLoop other;
    auto missing = DirectoryWatch::create(other, "/nonexistent-dir", [](auto, auto &) {});
    CHECK_FALSE(missing);
    CHECK(missing.error().find("/nonexistent-dir") != std::string::npos);
}

namespace {
// Sets a flag when destroyed, so a test can see a callback's captures die.
struct Sentinel {
    explicit Sentinel(bool *alive) : alive_(alive) { *alive_ = true; }
    Sentinel(const Sentinel &other) : alive_(other.alive_) {}
    ~Sentinel() { *alive_ = false; }
    bool *alive_;
};
} // namespace

TEST_CASE("a timer re-armed from its own callback keeps that callback alive until it returns")
{
    EventLoop loop;
    Timer timer(loop);
    bool firstAlive = false;
    bool aliveAfterRearm = false;
    int secondFired = 0;
    {
        auto sentinel = std::make_shared<Sentinel>(&firstAlive);
        timer.start(1, 0, [&, sentinel] {
            // What a retry does: it reconnects, which schedules the next retry.
            timer.start(1, 0, [&] {
                ++secondFired;
                loop.stop();
            });
            aliveAfterRearm = firstAlive; // our own captures must still be here
        });
    }
    loop.run();
    CHECK(aliveAfterRearm);
    CHECK(secondFired == 1);
    CHECK_FALSE(firstAlive); // and it is released once replaced and done
}

TEST_CASE("a callback that throws is caught at the loop's edge: the loop stops, other handles still close")
{
    EventLoop loop;
    bool bystanderRan = false;
    {
        Timer thrower(loop);
        Timer bystander(loop);
        thrower.start(1, 0, [] { throw std::runtime_error("device table corrupted"); });
        bystander.start(10000, 0, [&] { bystanderRan = true; });
        loop.run(); // returns: the failure stopped it
    }
    CHECK_FALSE(bystanderRan);
    CHECK(loop.failed());
    // The daemon's exit code comes from here: every handle closed, yet a failure.
    CHECK(loop.close() == UV_ECANCELED);
}

TEST_CASE("a posted task that throws stops the loop the same way")
{
    EventLoop loop;
    loop.post([] { throw std::logic_error("bad state"); });
    loop.run();
    CHECK(loop.failed());
    CHECK(loop.close() != 0);
}

TEST_CASE("a file that cannot be polled is refused with libuv's error, and the loop still closes clean")
{
    kvgpu::test::TempTree dir;
    dir.write("regular", "not pollable");
    int fd = ::open(dir.path("regular").c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    EventLoop loop;
    {
        FdWatcher watcher(loop, fd);
        CHECK(watcher.initError() == UV_EPERM);
        CHECK(watcher.start([](int) {}) == UV_EPERM);
    }
    ::close(fd);
    CHECK(loop.close() == 0);
}

TEST_CASE("a signal sent before its watcher exists, from any thread's point of view, reaches the loop once it runs")
{
    blockSignals({SIGUSR1});
    // Sent to the process while a second thread (created after the block, so
    // it inherits the mask) is alive: no thread may take it by the default action.
    std::thread bystander([] { std::this_thread::sleep_for(std::chrono::milliseconds(20)); });
    REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
    bystander.join();

    EventLoop loop;
    int delivered = 0;
    {
        SignalWatcher watcher(loop, SIGUSR1, [&] {
            ++delivered;
            loop.stop();
        });
        REQUIRE(watcher.initError() == 0);
        loop.run();
    }
    CHECK(delivered == 1);
    CHECK(loop.close() == 0);
}

TEST_CASE("signals that the kernel hands to a thread which does not block them still reach the loop, every one, "
          "and the process survives")
{
    // What a thread a library started before blockSignals looks like: the
    // signal unblocked. It is then the only thread that may take SIGUSR2, so
    // the kernel hands it each one sent to the process; the default action
    // would end the process there.
    blockSignals({SIGUSR2});
    std::atomic<bool> done{false};
    std::atomic<bool> unblocked{false};
    std::thread foreign([&] {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR2);
        ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
        unblocked = true;
        while (!done)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    while (!unblocked)
        std::this_thread::yield();

    constexpr int kSignals = 300;
    EventLoop loop;
    int delivered = 0;
    bool timedOut = false;
    {
        // One at a time: the next is sent once the loop has read the last, so
        // that none merges with a pending one and each must be seen.
        SignalWatcher watcher(loop, SIGUSR2, [&] {
            if (++delivered == kSignals)
                loop.stop();
            else
                ::kill(::getpid(), SIGUSR2);
        });
        REQUIRE(watcher.initError() == 0);
        Timer deadline(loop);
        deadline.start(static_cast<uint64_t>(kvgpu::test::scaled(std::chrono::seconds(10)).count()), 0, [&] {
            timedOut = true;
            loop.stop();
        });
        REQUIRE(::kill(::getpid(), SIGUSR2) == 0);
        loop.run();
    }
    done = true;
    foreign.join();
    CHECK_FALSE(timedOut);
    CHECK(delivered == kSignals);
    CHECK(loop.close() == 0);
}
