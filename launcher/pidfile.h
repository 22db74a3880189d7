// --pid-file: the launcher's pid, written so that nobody else's file can be overwritten through it.
#pragma once

#include <string>

namespace hr {

// Writes "<pid>\n" to a new file of an unpredictable name beside path (created exclusively: never through
// a planted symlink, never into an existing file), then renames it over path. False with errno on failure
// (the temporary file is removed).
bool pid_file_write(const std::string &path, int pid);
// Removes path if it still holds pid (another launcher may have taken it over); a symlink is not followed.
void pid_file_remove(const std::string &path, int pid);

} // namespace hr
