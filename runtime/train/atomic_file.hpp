// Writing a file so that a crash at any moment leaves the old file or the new one, never a
// torn one: a temporary file in the same directory, fsync, rename.
#pragma once

#include <filesystem>
#include <string_view>

namespace cnnc::rt {

// Throws std::runtime_error naming the file and the system's reason; leaves no temporary behind.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

}  // namespace cnnc::rt
