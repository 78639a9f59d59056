#include "daemon/log.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

namespace freeha::log {
namespace {

bool journal = false;
bool stderr_is_tty = false;

bool stderr_is_journal() {
    const char* e = std::getenv("JOURNAL_STREAM");
    if (e == nullptr) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(e, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st {};
    if (fstat(STDERR_FILENO, &st) < 0) return false;
    return st.st_dev == dev && st.st_ino == ino;
}

void write_stderr(int priority, std::string_view text) {
    // The "<N>" prefix is for journald and syslog; a terminal gets plain lines.
    std::string line = stderr_is_tty ? "freehad: " : "<" + std::to_string(priority) + ">";
    line += text;
    line += '\n';
    // One write per line so that concurrent writers never interleave within it.
    (void)!::write(STDERR_FILENO, line.data(), line.size());
}

void send_journal(int priority, std::string_view text, std::string_view message_id, const std::vector<Field>& fields) {
    std::vector<std::string> entries;
    entries.push_back("MESSAGE=" + std::string(text));
    entries.push_back("PRIORITY=" + std::to_string(priority));
    entries.push_back("SYSLOG_IDENTIFIER=freehad");
    if (!message_id.empty()) entries.push_back("MESSAGE_ID=" + std::string(message_id));
    for (const auto& f : fields) entries.push_back(f.name + "=" + f.value);
    std::vector<iovec> iov;
    for (auto& e : entries) iov.push_back(iovec{e.data(), e.size()});
    if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) < 0) write_stderr(priority, text);
}

}  // namespace

void init() {
    journal = stderr_is_journal();
    stderr_is_tty = isatty(STDERR_FILENO) == 1;
}

bool to_journal() { return journal; }

void message(int priority, std::string_view text) {
    if (journal)
        send_journal(priority, text, {}, {});
    else
        write_stderr(priority, text);
}

void event(int priority, std::string_view message_id, std::string_view text, const std::vector<Field>& fields) {
    if (journal)
        send_journal(priority, text, message_id, fields);
    else
        write_stderr(priority, text);
}

std::string with_errno(std::string_view text, int negative_errno) {
    return std::string(text) + ": " + std::strerror(-negative_errno);
}

std::string signal_name(int signo) {
    // sigabbrev_np() has no name for the real-time signals (it returns NULL).
    if (signo >= SIGRTMIN && signo <= SIGRTMAX)
        return signo == SIGRTMIN ? "SIGRTMIN" : "SIGRTMIN+" + std::to_string(signo - SIGRTMIN);
    if (const char* abbrev = sigabbrev_np(signo)) return std::string("SIG") + abbrev;
    return "signal " + std::to_string(signo);
}

}  // namespace freeha::log
