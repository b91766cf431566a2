/// The handler of an `HTTPServer`'s requests, called only on the server's loop thread.
public protocol HTTPServerDelegate: AnyObject {
    /// Delivers a complete request. The handler responds now or later with
    /// `connection.respond(_:)`, and the connection receives no other request until then.
    func server(_ server: HTTPServer, received request: HTTPRequest, on connection: HTTPConnection)

    /// Reports that a connection closed while its request was in flight without a
    /// response: the client disconnected, a read failed, or the server or handler
    /// closed it. Called once, before the connection's `context` is cleared, so the
    /// handler releases its poll here.
    func server(_ server: HTTPServer, abandoned connection: HTTPConnection)
}
