#include "daemon/status_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/log.h"
#include "bus/sd_ptr.h"

namespace freeha {

StatusWriter::StatusWriter(std::string json_path, std::string state_file_path)
    : json_path_(std::move(json_path)), state_file_path_(std::move(state_file_path)) {}

int StatusWriter::replace_file(const std::string& path, const std::string& content, std::string* step) {
    std::string dir = path.substr(0, path.rfind('/'));
    if (!dir.empty() && mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) {
        *step = "mkdir " + dir;
        return -errno;
    }
    std::string tmp = dir + "/." + path.substr(path.rfind('/') + 1) + ".XXXXXX";
    UniqueFd fd(mkostemp(tmp.data(), O_CLOEXEC));
    if (!fd) {
        *step = "create " + tmp;
        return -errno;
    }
    auto fail = [&](const char* what) {
        int r = -errno;
        *step = what;
        unlink(tmp.c_str());
        return r;
    };
    if (fchmod(fd.get(), 0644) < 0) return fail("fchmod");
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail("write");
        }
        done += static_cast<std::size_t>(n);
    }
    fd.reset();
    if (rename(tmp.c_str(), path.c_str()) < 0) return fail("rename");
    return 0;
}

void StatusWriter::report(const std::string& path, int r, const std::string& step, std::string& last_error) {
    std::string error = r < 0 ? log::with_errno("cannot write " + path + " (" + step + ")", r) : "";
    if (error == last_error) return;
    if (!error.empty())
        log::error(error);
    else
        log::notice("writing " + path + " works again");
    last_error = error;
}

bool StatusWriter::update(const Status& status, Usec now, Usec refresh) {
    if (written_ && now < written_at_ + refresh && same_facts(*written_, status)) return false;
    std::string step;
    int r = replace_file(json_path_, to_json(status).dump() + "\n", &step);
    report(json_path_, r, step, json_error_);
    bool ok = r >= 0;
    if (!state_file_path_.empty()) {
        r = replace_file(state_file_path_, to_freeha_text(status), &step);
        report(state_file_path_, r, step, state_error_);
        ok = ok && r >= 0;
    }
    if (ok)
        written_ = status;
    else
        written_.reset();  // tried again at the next update, as before
    written_at_ = now;
    return true;
}

}  // namespace freeha
