import Testing

/// Parent of every suite that drives the loop. All of them share libuv's default loop,
/// so they must never run at the same time.
@Suite(.serialized)
struct RedisLoopTests {}
