#pragma once
// Whole files, read and written with clear errors. write_file_atomic is the one way gng writes a
// file it must not lose (models, the promoted copy, keys, configs, reports, QUBOs): the bytes go to
// a temporary file beside it, which is fsynced and renamed over `path`, and the directory is fsynced
// so the rename itself survives a power cut. A reader sees the old file or the new one, never half.
#include <cstddef>
#include <string>
#include <string_view>

namespace gng {

// The file's bytes. gng::Error naming the path when it cannot be read, or when it holds more than
// `max_bytes`: reading stops there, so a device such as /dev/zero is refused, not read forever.
constexpr std::size_t kMaxReadBytes = std::size_t{1} << 30;
std::string read_file(const std::string& path, std::size_t max_bytes = kMaxReadBytes);

// Writes `content` to `path` atomically and durably (see above); mode 0600 when `secret`, else 0644.
// On a failure up to the rename nothing at `path` has changed and the temporary file is removed; a
// failed fsync of the directory after it is reported too (the new file is in place, but a power cut
// may still lose the rename). gng::Error names the path and the cause. A `path` that is a device or
// a pipe (/dev/stdout) is written to directly.
void write_file_atomic(const std::string& path, std::string_view content, bool secret = false);

// Copies `from` to `to` with write_file_atomic (the copy keeps `from`'s 0600 mode if it has it).
void copy_file_atomic(const std::string& from, const std::string& to);

}  // namespace gng
