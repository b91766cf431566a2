/// Size and time limits that one `HTTPServer` applies to every connection.
///
/// The server rejects a request over a size limit with the matching 4xx status and
/// closes its connection. Times are milliseconds of the loop's monotonic clock, and
/// a deadline fires up to one tick of the server's timer wheel (250 ms) late.
public struct HTTPLimits {
    /// Maximum size of the request line without its target, plus the header fields.
    /// A larger header section gets 431.
    public var maxHeaderBytes: Int = 8192
    /// Maximum size of the request target. A longer one gets 414.
    public var maxURLBytes: Int = 8192
    /// Maximum request body. A larger one gets 413, as soon as `Content-Length` shows
    /// it or once the decoded chunks of a chunked body exceed it.
    public var maxBodyBytes: Int = 1 << 20
    /// Time from accepting a connection, or from the first byte of a later request,
    /// until the request's headers are complete. Past it the connection is closed,
    /// after a 408 when part of a request arrived and no response was sent on it yet.
    public var headerTimeoutMilliseconds: UInt64 = 10_000
    /// Time a keep-alive connection may wait for its next request.
    public var idleTimeoutMilliseconds: UInt64 = 75_000
    /// Time from the end of a request's headers until its whole body has arrived,
    /// however the client paces it. Past it the client gets 408 and the connection closes.
    public var bodyTimeoutMilliseconds: UInt64 = 30_000
    /// Time a queued write may take to drain into the socket before the connection is closed.
    public var writeTimeoutMilliseconds: UInt64 = 10_000
    /// Maximum bytes queued for writing on one connection. Past it the connection is closed.
    public var maxQueuedWriteBytes: Int = 4 << 20
    /// Maximum bytes of pipelined requests buffered while an earlier request is in flight.
    /// Past it the server stops reading from the connection until that request's response is written.
    public var maxPendingBytes: Int = 64 << 10
    /// Time the server keeps reading and discarding after a final response and a
    /// write shutdown, so that the client reads the response instead of a TCP reset.
    public var lingerTimeoutMilliseconds: UInt64 = 2_000

    public init() {}
}
