// tests/fuzz/fuzz_commands.cpp: libFuzzer entry point for fuzz::commands (targets.hpp).
#include <cstddef>
#include <cstdint>

#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::commands({data, size});  // a fuzz::Violation escapes: libFuzzer reports a crash
    return 0;
}
