// RAII owners for every libsystemd and file-descriptor handle the daemon holds.
#pragma once

#include <memory>
#include <utility>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <unistd.h>

namespace freeha {

template <auto Fn>
struct Deleter {
    template <typename T>
    void operator()(T* p) const {
        Fn(p);
    }
};

using EventPtr = std::unique_ptr<sd_event, Deleter<sd_event_unref>>;
// Disabling before unref stops a source from firing while it is torn down.
using EventSourcePtr = std::unique_ptr<sd_event_source, Deleter<sd_event_source_disable_unref>>;
// Closing without a flush: sd_bus_flush() waits for as long as a hung bus
// takes to read, and nothing here has queued messages that must survive.
using BusPtr = std::unique_ptr<sd_bus, Deleter<sd_bus_close_unref>>;
using BusSlotPtr = std::unique_ptr<sd_bus_slot, Deleter<sd_bus_slot_unref>>;
using BusMessagePtr = std::unique_ptr<sd_bus_message, Deleter<sd_bus_message_unref>>;

// An owned file descriptor.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept {
        if (this != &o) reset(std::exchange(o.fd_, -1));
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

}  // namespace freeha
