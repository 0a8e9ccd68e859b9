#include "core/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace gng {

namespace {

// Closes a descriptor when it goes out of scope.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string why(int err) { return std::strerror(err); }

}  // namespace

std::string read_file(const std::string& path, std::size_t max_bytes) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw Error("cannot read " + path + ": " + why(errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw Error("cannot read " + path + ": " + why(errno));
  if (S_ISDIR(st.st_mode)) throw Error("cannot read " + path + ": it is a directory");
  std::string out;
  if (S_ISREG(st.st_mode)) out.reserve(static_cast<std::size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t k = ::read(f.fd, buf, sizeof buf);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) throw Error("cannot read " + path + ": " + why(errno));
    if (k == 0) break;
    out.append(buf, static_cast<std::size_t>(k));
    if (out.size() > max_bytes)
      throw Error(path + ": larger than " + std::to_string(max_bytes) + " bytes, refused");
  }
  return out;
}

namespace {

// A device or a pipe (e.g. /dev/stdout) cannot be replaced by a rename: it is written to directly.
void write_through(const std::string& path, std::string_view content) {
  Fd f{::open(path.c_str(), O_WRONLY | O_CLOEXEC)};
  if (f.fd < 0) throw Error("cannot write " + path + ": " + why(errno));
  for (std::size_t done = 0; done < content.size();) {
    const ssize_t k = ::write(f.fd, content.data() + done, content.size() - done);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) throw Error("cannot write " + path + ": " + why(errno));
    done += static_cast<std::size_t>(k);
  }
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view content, bool secret) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) return write_through(path, content);
  const std::string tmp = path + ".tmp";
  auto fail = [&](const std::string& what, int err) {
    ::unlink(tmp.c_str());
    throw Error("cannot write " + path + ": " + what + ": " + why(err));
  };
  {
    Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, secret ? 0600 : 0644)};
    if (f.fd < 0) throw Error("cannot write " + path + ": " + why(errno));
    std::size_t done = 0;
    while (done < content.size()) {
      const ssize_t k = ::write(f.fd, content.data() + done, content.size() - done);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) fail("write " + tmp, errno);
      done += static_cast<std::size_t>(k);
    }
    if (::fsync(f.fd) != 0) fail("fsync " + tmp, errno);
    const int fd = f.fd;
    f.fd = -1;
    if (::close(fd) != 0) fail("close " + tmp, errno);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename " + tmp, errno);
  // The rename is durable once the directory that holds both names is on disk.
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  Fd d{::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd < 0 || ::fsync(d.fd) != 0) throw Error("cannot write " + path + ": fsync of its directory: " + why(errno));
}

void copy_file_atomic(const std::string& from, const std::string& to) {
  struct stat st {};
  const bool secret = ::stat(from.c_str(), &st) == 0 && (st.st_mode & 0077) == 0;
  write_file_atomic(to, read_file(from), secret);
}

}  // namespace gng
