// text.hpp: line framing for a byte stream, and control bytes made harmless.
//
// TCP delivers a stream of bytes, not messages: one recv() may return half a
// line, or three lines and the start of a fourth. A line protocol therefore
// keeps the bytes that arrived after the last '\n' until the rest comes. That
// buffer must be bounded, or one client that never sends '\n' eats the
// server's memory. docs/02-multiclient.md#input-buffers-and-output-queues
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace common {

// Splits a byte stream into lines of at most `max_line` bytes (not counting
// the '\n', nor a '\r' just before it, which is dropped).
class LineFramer {
  public:
    explicit LineFramer(std::size_t max_line) : max_line_(max_line) {}

    enum class Status {
        line,       // `line` holds the next complete line
        need_more,  // no complete line buffered yet
        too_long,   // a line is longer than max_line: the stream is unusable
    };

    // Add bytes as they came from recv().
    void append(std::string_view bytes) { buffer_.append(bytes); }

    // Take the next complete line out of the buffer. After too_long the
    // framer stays in that state.
    Status next(std::string& line);

    // At EOF: the bytes after the last '\n' (without a trailing '\r'), and
    // the buffer is emptied.
    std::string take_rest();

    // Bytes buffered and not yet returned as a line.
    std::size_t buffered() const { return buffer_.size() - start_; }

  private:
    std::size_t max_line_;
    std::string buffer_;
    std::size_t start_ = 0;  // lines before this offset were already returned
    bool too_long_ = false;
};

// `text` with every control byte except tab (0x00-0x1f, 0x7f, and the C1
// controls U+0080-U+009F in their UTF-8 form) and every byte that is not part
// of well-formed UTF-8 written as "\xNN", so that text from a peer cannot
// move the cursor, recolour or retitle a terminal, whatever its encoding; and
// every invisible format character (is_invisible_format) written as "\u202e"
// ("\U000e0041" above U+FFFF), so that it cannot reorder or hide text.
std::string escape_controls(std::string_view text);

// Unicode format characters a reader cannot see: the bidirectional controls
// (U+202A-202E, U+2066-2069, U+200E-200F, U+061C), zero-width characters,
// invisible operators, the BOM, tag characters, the soft hyphen, and the
// line and paragraph separators. docs/security.md#invisible-characters
bool is_invisible_format(char32_t cp);

}  // namespace common
