// Logging: "<N>"-prefixed lines on stderr, or native journal entries with
// structured fields when stderr is connected to the journal.
//
// Both are sockets to journald under systemd, and a stopped journald with a
// full queue blocks whoever writes to them. So the caller only queues the
// line; one thread of this module writes it. A full queue (kQueuedLines)
// drops the line and counts it; once the writer catches up it logs how many
// were dropped. At exit the queue is flushed for at most kExitFlush.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <syslog.h>

namespace freeha::log {

// Catalogued MESSAGE_IDs (units/freehad.catalog explains each).
namespace message_id {
inline constexpr std::string_view kStateChanged = "80d372c04a184ba8a9b11d31582862bb";
inline constexpr std::string_view kTakeover = "16a05e5f8fea4f03baea106025418c4b";
inline constexpr std::string_view kHookFailed = "1a1aeb4198ac4f59b69f1c61a6fafe80";
inline constexpr std::string_view kQuorumGained = "97b9671bd43d436d804fd9a1224a9422";
inline constexpr std::string_view kQuorumLost = "b7cec9aaa42b432ebd2231ddee7c235a";
inline constexpr std::string_view kPeerTimedOut = "187f9542ff8e473ab2d1c05e53d37d6b";
inline constexpr std::string_view kDualActiveResolved = "601694d78e1d48ebb3eb81b6bfc81cbc";
inline constexpr std::string_view kUnexpectedServices = "0df616cb6dbe41d693499d359ca03b6e";
inline constexpr std::string_view kLeaseLost = "9de5823016d447bbb187986e56d66f0a";
inline constexpr std::string_view kSelfFence = "c6538ea661174587930c189cbb47a971";
inline constexpr std::string_view kAddressConflict = "848cb1ed965d414392072599b809b0f6";
inline constexpr std::string_view kMaintenanceChanged = "9ce4c44e2ee24526bf793efaabc3c9b1";
inline constexpr std::string_view kPeerLeft = "fb5d09c4bb0c4fe39bc4135ee310d743";
inline constexpr std::string_view kLinkLossy = "0ef2e2b129fb46a7a7a8f539572b8d6b";
inline constexpr std::string_view kLinkRecovered = "ac27b76db6524faaa331507259564504";
}  // namespace message_id

struct Field {
    std::string name;  // e.g. "FREEHA_NODE"
    std::string value;
};

// Lines queued and not written yet, at most; a line beyond them is dropped.
// Lines below LOG_NOTICE (hook output, debug) may take only 3/4 of the
// queue, so that a chatty hook cannot crowd out a state change.
inline constexpr std::size_t kQueuedLines = 1024;
inline constexpr std::size_t kQueuedRoutineLines = kQueuedLines / 4 * 3;
// How long the exit waits for queued lines to be written.
inline constexpr std::chrono::milliseconds kExitFlush{500};

// Decides once whether stderr is the journal ($JOURNAL_STREAM matches it).
void init();
// Whether messages go to the journal (native entries) rather than stderr.
bool to_journal();

// Queues the line and returns at once, whatever the journal does.
void message(int priority, std::string_view text);
// A structured entry: MESSAGE_ID plus fields; on stderr just the text.
void event(int priority, std::string_view message_id, std::string_view text, const std::vector<Field>& fields);

// Lines dropped since start because the queue was full (the status document shows it).
std::uint64_t dropped_lines();
// Waits until every queued line is written, for at most `timeout`; false if some are still queued.
bool flush(std::chrono::milliseconds timeout);

inline void error(std::string_view text) { message(LOG_ERR, text); }
inline void warning(std::string_view text) { message(LOG_WARNING, text); }
inline void notice(std::string_view text) { message(LOG_NOTICE, text); }
inline void info(std::string_view text) { message(LOG_INFO, text); }
inline void debug(std::string_view text) { message(LOG_DEBUG, text); }

// The lines about one service group of a node with several: each begins with
// "group NAME: " and carries FREEHA_GROUP=NAME. The default group's (and a
// default-constructed one's) are plain lines, as without groups.
class GroupLines {
public:
    GroupLines() = default;
    explicit GroupLines(std::string group) : group_(std::move(group)) {}
    std::string named(std::string_view text) const;
    std::vector<Field> fields(std::vector<Field> fields) const;
    void message(int priority, std::string_view text) const;
    void error(std::string_view text) const { message(LOG_ERR, text); }
    void warning(std::string_view text) const { message(LOG_WARNING, text); }
    void notice(std::string_view text) const { message(LOG_NOTICE, text); }
    void info(std::string_view text) const { message(LOG_INFO, text); }

private:
    std::string group_;  // "" for the default group
};

// "text: strerror(-negative_errno)"
std::string with_errno(std::string_view text, int negative_errno);

// "SIGTERM", "SIGRTMIN+6", or "signal 99": never empty, never null.
std::string signal_name(int signo);

// The body of a C callback (sd-event, sd-bus): no exception may unwind into
// C, so one that escapes is logged here and the callback returns 0, which
// keeps its event source and the loop running.
template <typename Body>
int guarded(std::string_view callback, Body&& body) noexcept {
    try {
        return body();
    } catch (const std::exception& e) {
        error(std::string(callback) + ": " + e.what());
    } catch (...) {
        error(std::string(callback) + ": unknown exception");
    }
    return 0;
}

}  // namespace freeha::log
