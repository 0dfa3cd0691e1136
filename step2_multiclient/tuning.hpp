// step2_multiclient/tuning.hpp: performance settings a learner can skip.
//
// Nothing here changes what a client sees; it changes how much memory and CPU
// the relays spend when thousands of clients come and go. Each number was
// measured; docs/02-multiclient.md#tuning says where each was measured.
// The lesson (select, epoll, TLS, flow control) lives in server.cpp,
// server_epoll.cpp, step3_tls/server.cpp and relay.hpp.
#pragma once

#include <malloc.h>

#include <chrono>
#include <cstddef>
#include <optional>

namespace tuning {

// Connections accepted per wake-up. Each join is announced to everyone, so
// each accept adds a line to every client's queue; sending them before the
// next batch keeps those queues short, and the queues freed between batches
// leave fewer holes in the heap around the clients' long-lived objects.
// select, 1000 clients joining, memory per idle client and the time until all
// were welcomed: 256 per batch 2-4 KB; 32: about 1000 bytes, 0.09 s; 8:
// 786 bytes, 0.17-0.21 s.
constexpr int kAcceptBatchSelect = 8;
// epoll serves ten times more clients: every wake-up that admits someone sends
// "joined" to everyone, so admitting many at once is much cheaper than one
// wake-up per newcomer. Not the whole backlog (1024) either: 10,000 queues of
// 1024 lines are 160 MB to allocate, fill and free per wake-up (10,000 clients
// joining: 5.4 s of CPU with 1024 per batch, 4.5 s with 256, 7.1 s with 64).
// Stage 3 uses it too: a handshake costs far more than the joined lines.
constexpr int kAcceptBatch = 256;

// Queued chunks handed to one sendmsg() (an iovec array; IOV_MAX is 1024).
constexpr std::size_t kGather = 256;
// An empty queue has no memory; it starts with room for a burst instead of
// growing 1, 2, 4, 8 ... line by line.
constexpr std::size_t kQueueReserve = 16;

// A burst (1000 clients joining: a million "joined" lines; or a thousand
// TLS handshakes abandoned half-way) leaves the heap full of freed memory that
// malloc keeps. MemoryTrim hands it back to the kernel (malloc_trim) a second
// after the burst, so idle clients cost little.
class MemoryTrim {
  public:
    using Clock = std::chrono::steady_clock;
    void sent(std::size_t bytes) { sent_ += bytes; }
    void closed() { ++closed_; }  // a connection (and its buffers, its SSL) is gone
    // Trim when due; else when it will be due (nullopt: nothing to do).
    std::optional<Clock::time_point> run(Clock::time_point now) {
        if (sent_ <= (64u << 10) && closed_ < 16) return std::nullopt;
        if (now - last_ < std::chrono::seconds(1)) return last_ + std::chrono::seconds(1);
        ::malloc_trim(0);
        sent_ = 0;
        closed_ = 0;
        last_ = now;
        return std::nullopt;
    }

  private:
    std::size_t sent_ = 0;    // bytes since the last trim
    std::size_t closed_ = 0;  // connections closed since the last trim
    Clock::time_point last_{};
};

}  // namespace tuning
