// A preload for the Flood process test: every datagram recv() returns costs
// $FREEHA_TEST_RECV_USEC microseconds more, as a heartbeat does on a CPU that
// 64 starting nodes share, so that a flood arrives faster than the daemon
// can read it and its heartbeat socket never runs empty.
#include <dlfcn.h>
#include <sys/socket.h>
#include <time.h>

#include <cstdlib>

extern "C" ssize_t recv(int fd, void* buf, size_t len, int flags) {
    using Recv = ssize_t (*)(int, void*, size_t, int);
    static auto real = reinterpret_cast<Recv>(dlsym(RTLD_NEXT, "recv"));
    static const long usec = [] {
        const char* v = std::getenv("FREEHA_TEST_RECV_USEC");
        return v != nullptr ? std::atol(v) : 0L;
    }();
    ssize_t n = real(fd, buf, len, flags);
    if (n >= 0 && usec > 0) {
        struct timespec pause = {usec / 1000000, (usec % 1000000) * 1000};
        nanosleep(&pause, nullptr);
    }
    return n;
}
