#include "loop/event_loop.h"
#include "monitor/directory_watch.h"
#include "temp_tree.h"

#include <doctest/doctest.h>

#include <thread>

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
    std::string error;
    auto watch = DirectoryWatch::create(
        loop, dir.root(),
        [&](DirectoryWatch::Change change, const std::string &name) {
            seen.push_back((change == DirectoryWatch::Change::Created ? "+" : "-") + name);
            if (seen.size() == 2)
                loop.stop();
        },
        error);
    REQUIRE(watch);
    dir.write("kubelet.sock", "");
    dir.remove("kubelet.sock");
    loop.run();
    CHECK(seen == std::vector<std::string>{"+kubelet.sock", "-kubelet.sock"});
    watch.reset();
    CHECK(loop.close() == 0);

    EventLoop other;
    CHECK_FALSE(DirectoryWatch::create(other, "/nonexistent-dir", [](auto, auto &) {}, error));
    CHECK(error.find("/nonexistent-dir") != std::string::npos);
}
