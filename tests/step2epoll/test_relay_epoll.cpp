// The stage 2 protocol tests again, against server_epoll: the same chat
// protocol on a different event loop must behave the same, byte for byte.
#define STEP2_RELAY_SERVER "step2_multiclient/server_epoll"
#define STEP2_RELAY_TOO_MANY "2000000"
#define STEP2_RELAY_MAX_1000 \
    { "--max-clients", "1000" }
#include "../step2/test_relay.cpp"  // NOLINT(bugprone-suspicious-include)
