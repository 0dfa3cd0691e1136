// tests/fuzz/targets.hpp: what the fuzzers check, callable from a test too.
//
// Each function takes arbitrary bytes, drives one part of the chat input
// path with them, and throws fuzz::Violation when an invariant breaks.
// libFuzzer calls them from tests/fuzz/fuzz_*.cpp (an uncaught exception is
// a crash there); the robustness suite replays the seed corpus and every
// regression input through them with the ordinary build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>

namespace fuzz {

struct Violation : std::logic_error {
    using std::logic_error::logic_error;
};

// common::LineFramer against a reference model (and common::escape_controls,
// whose output must be inert in a terminal): the first byte picks the
// line limit and the next ones how the rest is cut into recv()-sized
// pieces. Lines, the too_long verdict, the rest at EOF and the buffer bound
// must all agree with the model.
void framer(std::span<const std::uint8_t> data);

// The chat command parser: a Room with three members; each '\n'-separated
// line of the input is sent by one of them (the line's first byte picks
// who). Checks every Delivery.
void commands(std::span<const std::uint8_t> data);

// A client's whole input path, through chat::Room with up to 8 clients: the
// input is a script of joins, recv() pieces, EOFs and losses. Checks every
// Delivery, the closes, and the Room's membership after each step.
void room(std::span<const std::uint8_t> data);

}  // namespace fuzz
