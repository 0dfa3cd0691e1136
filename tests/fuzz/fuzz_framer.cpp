// tests/fuzz/fuzz_framer.cpp: libFuzzer entry point for fuzz::framer (targets.hpp).
#include <cstddef>
#include <cstdint>

#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::framer({data, size});  // a fuzz::Violation escapes: libFuzzer reports a crash
    return 0;
}
