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

namespace {

// Length of the well-formed UTF-8 sequence at the start of `t` (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF), or 0 if the
// first byte does not start one.
std::size_t utf8_length(std::string_view t) {
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(t[k]); };
    const unsigned char c = byte(0);
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;  // overlong
        if (c == 0xed) hi = 0x9f;  // UTF-16 surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;  // overlong
        if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
    } else {
        return 0;
    }
    if (t.size() < n || byte(1) < lo || byte(1) > hi) return 0;
    for (std::size_t k = 2; k < n; ++k) {
        if (byte(k) < 0x80 || byte(k) > 0xbf) return 0;
    }
    return n;
}

// The code point of a well-formed UTF-8 sequence of length n (2-4).
char32_t decode(std::string_view t, std::size_t n) {
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(t[k]); };
    char32_t cp = byte(0) & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
    for (std::size_t k = 1; k < n; ++k)
        cp = (cp << 6) | (byte(k) & 0x3f);
    return cp;
}

}  // namespace

// [docs:invisible]
bool is_invisible_format(char32_t cp) {
    return cp == 0x00ad                          // soft hyphen: usually not drawn
           || cp == 0x061c                       // Arabic letter mark (bidi)
           || cp == 0x180e                       // Mongolian vowel separator
           || (cp >= 0x200b && cp <= 0x200f)     // zero width space/non-joiner/joiner, LRM, RLM
           || (cp >= 0x2028 && cp <= 0x202e)     // line/paragraph separator; LRE RLE PDF LRO RLO
           || (cp >= 0x2060 && cp <= 0x2064)     // word joiner, invisible operators
           || (cp >= 0x2066 && cp <= 0x206f)     // LRI RLI FSI PDI; deprecated format controls
           || cp == 0xfeff                       // zero width no-break space (BOM)
           || (cp >= 0xfff9 && cp <= 0xfffb)     // interlinear annotation
           || (cp >= 0xe0000 && cp <= 0xe007f);  // tag characters: invisible ASCII
}
// [/docs]

std::string escape_controls(std::string_view text) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(text.size());
    auto escape = [&](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        out += "\\x";
        out += hex[c >> 4];
        out += hex[c & 0xf];
    };
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                escape(text[i]);
            } else {
                out += text[i];
            }
            ++i;
            continue;
        }
        const std::size_t n = utf8_length(text.substr(i));
        const bool c1_control =
            n == 2 && c == 0xc2 && static_cast<unsigned char>(text[i + 1]) <= 0x9f;
        if (n == 0 || c1_control) {
            // A C1 control (U+0080-U+009F; U+009B is CSI), or a byte that is
            // not UTF-8 at all: a lone 0x9b is CSI to a terminal set to
            // Latin-1. Either way it is shown, not obeyed.
            const std::size_t len = n == 0 ? 1 : n;
            for (std::size_t k = 0; k < len; ++k)
                escape(text[i + k]);
            i += len;
        } else if (const char32_t cp = decode(text.substr(i), n); is_invisible_format(cp)) {
            // Drawn as nothing, or reorders what follows (U+202E makes text
            // read backwards: "Trojan Source"): shown by its number instead.
            const bool bmp = cp <= 0xffff;
            out += bmp ? "\\u" : "\\U";
            for (int shift = bmp ? 12 : 28; shift >= 0; shift -= 4)
                out += hex[(cp >> shift) & 0xf];
            i += n;
        } else {
            out.append(text.substr(i, n));  // a printable character: as it is
            i += n;
        }
    }
    return out;
}

}  // namespace common
