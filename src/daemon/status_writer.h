// Writes the JSON status file and FreeHA's text state file, each replaced atomically.
#pragma once

#include <optional>
#include <string>

#include "core/status.h"
#include "core/timespan.h"

namespace freeha {

class StatusWriter {
public:
    StatusWriter(std::string json_path, std::string state_file_path);

    // Writes both files when `status` says something they do not
    // (same_facts()), when the last write failed, or when `refresh` has passed
    // since the last write, so that the ages and counters left out of the
    // comparison still move on; else nothing. A failure is logged when it
    // starts and when it ends. Returns whether it wrote.
    bool update(const Status& status, Usec now, Usec refresh);

    const std::string& json_path() const { return json_path_; }

private:
    // Write to a temporary file in the same directory, fchmod 0644 (UMask=
    // may be tighter), then rename: a reader sees the old or the new
    // document, never a partial one. Returns a negative errno.
    static int replace_file(const std::string& path, const std::string& content, std::string* step);
    void report(const std::string& path, int r, const std::string& step, std::string& last_error);

    std::string json_path_;
    std::string state_file_path_;
    std::string json_error_;
    std::string state_error_;
    std::optional<Status> written_;  // the last snapshot written, while both files took it
    Usec written_at_{};
};

}  // namespace freeha
