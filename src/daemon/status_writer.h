// Writes the JSON status file and FreeHA's text state file, each replaced atomically.
#pragma once

#include <string>

#include "core/status.h"

namespace freeha {

class StatusWriter {
public:
    StatusWriter(std::string json_path, std::string state_file_path);

    // Writes both files; a failure is logged when it starts and when it ends.
    void write(const Status& status);

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
};

}  // namespace freeha
