// Reading the files freehad is given: only regular files of a bounded size, opened without blocking, else one line naming the file.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "daemon/regular_file.h"

using namespace freeha;

namespace {

constexpr FileLimit kTiny{"a test file", 8};

class RegularFileTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/freeha-regular-file-XXXXXX";
        root_ = mkdtemp(pattern);
    }
    void TearDown() override { std::filesystem::remove_all(root_); }
    std::string path(const char* name) const { return (root_ / name).string(); }
    std::string write(const char* name, const std::string& text) const {
        std::ofstream(path(name), std::ios::binary) << text;
        return path(name);
    }

    std::filesystem::path root_;
};

}  // namespace

TEST_F(RegularFileTest, ReadsARegularFileUpToTheLimitThroughSymlinks) {
    for (const std::string& text : {std::string(), std::string("x"), std::string("12345678"),
                                    std::string("a\0b\n", 4)}) {
        std::string file = write("file", text);
        std::filesystem::remove(path("link"));
        std::filesystem::create_symlink(file, path("link"));
        for (const auto& p : {file, path("link")}) {
            std::string content = "stale", error;
            EXPECT_EQ(read_regular_file(p, kTiny, &content, &error), 0) << error;
            EXPECT_EQ(content, text) << p;
            EXPECT_EQ(error, "");
        }
    }
}

TEST_F(RegularFileTest, DevNullReadsAsAnEmptyFile) {
    std::filesystem::create_symlink("/dev/null", path("masked"));
    for (const auto& p : {std::string("/dev/null"), path("masked")}) {
        std::string content = "stale", error;
        EXPECT_EQ(read_regular_file(p, kTiny, &content, &error), 0) << error;
        EXPECT_EQ(content, "");
    }
}

TEST_F(RegularFileTest, RefusesWhatIsNotARegularFileOfTheKindsSizeNamingIt) {
    ASSERT_EQ(mkfifo(path("fifo").c_str(), 0600), 0);
    std::filesystem::create_directory(path("dir"));
    std::filesystem::create_symlink("/dev/zero", path("zero"));
    std::filesystem::create_symlink(path("nowhere"), path("dangling"));
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::string socket_path = path("socket");
    ASSERT_LT(socket_path.size(), sizeof address.sun_path);
    socket_path.copy(address.sun_path, socket_path.size());
    ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    struct Case {
        std::string path;
        int expected_errno;
        std::string expected;
    };
    const Case cases[] = {
        {path("missing"), -ENOENT, "No such file or directory"},
        {path("dangling"), -ENOENT, "No such file or directory"},
        {path("dir"), -EISDIR, "is a directory, not a regular file"},
        {path("fifo"), -EINVAL, "is a FIFO, not a regular file"},  // no writer: a blocking open would hang
        {path("zero"), -EINVAL, "is a character device, not a regular file"},
        {socket_path, -EINVAL, "is a socket, not a regular file"},
        {write("big", "123456789"), -EFBIG, "9 bytes; a test file may have at most 8"},
        {path("file/below"), -ENOTDIR, "Not a directory"},
    };
    write("file", "x");
    for (const auto& c : cases) {
        auto started = std::chrono::steady_clock::now();
        std::string content = "untouched", error;
        EXPECT_EQ(read_regular_file(c.path, kTiny, &content, &error), c.expected_errno) << c.path;
        EXPECT_EQ(error, c.path + ": " + c.expected);
        EXPECT_EQ(content, "untouched");
        RegularFile file;
        EXPECT_EQ(open_regular_file(c.path, kTiny, &file, &error), c.expected_errno) << c.path;
        EXPECT_FALSE(file.fd);
        EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1)) << c.path;
    }
    close(listener);
    // Says 0 bytes and has more, as a file that grows while it is read.
    std::string content, error;
    EXPECT_EQ(read_regular_file("/proc/self/status", kTiny, &content, &error), -EFBIG);
    EXPECT_EQ(error, "/proc/self/status: more than 8 bytes; a test file may have at most 8");
}

TEST_F(RegularFileTest, OpensWithoutBlockingAndClosesOnExec) {
    std::string file = write("file", "12345");
    RegularFile opened;
    std::string error;
    ASSERT_EQ(open_regular_file(file, kTiny, &opened, &error), 0) << error;
    EXPECT_EQ(opened.st.st_size, 5);
    EXPECT_TRUE(S_ISREG(opened.st.st_mode));
    int flags = fcntl(opened.fd.get(), F_GETFL);
    EXPECT_EQ(flags & O_ACCMODE, O_RDONLY);
    EXPECT_NE(flags & O_NONBLOCK, 0);
    EXPECT_NE(fcntl(opened.fd.get(), F_GETFD) & FD_CLOEXEC, 0);
    // read_up_to stops at the end of the file or of the buffer.
    std::uint8_t buffer[3];
    EXPECT_EQ(read_up_to(opened.fd.get(), buffer), 3);
    EXPECT_EQ(buffer[0], '1');
    EXPECT_EQ(read_up_to(opened.fd.get(), buffer), 2);
    EXPECT_EQ(buffer[1], '5');
    EXPECT_EQ(read_up_to(opened.fd.get(), buffer), 0);
    EXPECT_EQ(read_up_to(-1, buffer), -EBADF);
}
