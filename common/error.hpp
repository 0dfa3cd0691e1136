// error.hpp: errors that name the call that failed and what it was given.
//
// Stevens' wrappers taught this: a message like
//     bind 0.0.0.0:7001: Address already in use
// tells the reader which call, with which argument, and what errno said.
// std::system_error carries errno's code, so callers can still test it.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <system_error>

namespace common {

// Throw std::system_error for errno, with the text "call arg".
[[noreturn]] inline void throw_errno(std::string_view call, std::string_view arg = {}) {
    int saved = errno;
    std::string what(call);
    if (!arg.empty()) {
        what += ' ';
        what += arg;
    }
    throw std::system_error(saved, std::generic_category(), what);
}

// For calls that return -1 on failure: returns the result, or throws.
template <typename T>
T check(T result, std::string_view call, std::string_view arg = {}) {
    if (result == -1) throw_errno(call, arg);
    return result;
}

// Error codes that are not a failure but "try again": the call was interrupted
// by a signal, or a non-blocking socket has nothing to give or take right now.
inline bool is_transient(int err) {
    return err == EINTR || err == EAGAIN || err == EWOULDBLOCK;
}

}  // namespace common
