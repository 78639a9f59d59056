// A preload for the ClockAhead process test: CLOCK_REALTIME runs
// $FREEHA_TEST_CLOCK_AHEAD seconds ahead, as on a machine whose RTC is wrong,
// while CLOCK_MONOTONIC (on which sd-event arms its timers) stays true.
// libfaketime cannot do this: it shifts absolute timerfd deadlines too.
#include <dlfcn.h>
#include <time.h>

#include <cstdlib>

extern "C" int clock_gettime(clockid_t clock, struct timespec* ts) {
    using ClockGettime = int (*)(clockid_t, struct timespec*);
    static auto real = reinterpret_cast<ClockGettime>(dlsym(RTLD_NEXT, "clock_gettime"));
    int r = real(clock, ts);
    if (r == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) {
        const char* ahead = std::getenv("FREEHA_TEST_CLOCK_AHEAD");
        if (ahead != nullptr) ts->tv_sec += std::atol(ahead);
    }
    return r;
}
