// tests/fuzz/fuzz_room.cpp: libFuzzer entry point for fuzz::room (targets.hpp).
#include <cstddef>
#include <cstdint>

#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::room({data, size});  // a fuzz::Violation escapes: libFuzzer reports a crash
    return 0;
}
