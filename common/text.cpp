#include "text.hpp"

namespace common {

LineFramer::Status LineFramer::next(std::string& line) {
    if (too_long_) return Status::too_long;
    const std::size_t newline = buffer_.find('\n', start_);
    if (newline == std::string::npos) {
        // No '\n' yet. More than max_line bytes (plus a '\r' that may be the
        // first half of "\r\n") can never become a valid line.
        const std::size_t pending = buffer_.size() - start_;
        const bool cr_last = pending > 0 && buffer_.back() == '\r';
        if (pending > max_line_ + (cr_last ? 1 : 0)) too_long_ = true;
        // Keep the buffer small: drop what was already returned.
        buffer_.erase(0, start_);
        start_ = 0;
        return too_long_ ? Status::too_long : Status::need_more;
    }
    std::size_t end = newline;
    if (end > start_ && buffer_[end - 1] == '\r') --end;
    if (end - start_ > max_line_) {
        too_long_ = true;
        return Status::too_long;
    }
    line.assign(buffer_, start_, end - start_);
    start_ = newline + 1;
    return Status::line;
}

std::string LineFramer::take_rest() {
    std::string rest = buffer_.substr(start_);
    if (!rest.empty() && rest.back() == '\r') rest.pop_back();
    buffer_.clear();
    start_ = 0;
    return rest;
}

std::string escape_controls(std::string_view text) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(text.size());
    auto escape = [&](unsigned char c) {
        out += "\\x";
        out += hex[c >> 4];
        out += hex[c & 0xf];
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            escape(c);
        } else if (c == 0xc2 && i + 1 < text.size() &&
                   static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                   static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
            // U+0080..U+009F: C1 controls (U+009B is a one-byte CSI).
            escape(c);
            escape(static_cast<unsigned char>(text[++i]));
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

}  // namespace common
