import CHTTPParser
import Glibc

/// A failure of the client, with the operation and the reason.
public struct ClientError: Error, CustomStringConvertible {
    public let description: String
    /// The HTTP status when the server answered with an error, nil for a failure
    /// to connect, send or receive.
    public let status: Int?

    public init(_ description: String, status: Int? = nil) {
        self.description = description
        self.status = status
    }
}

/// An HTTP response as the client received it.
public struct ClientResponse {
    public var status: Int
    /// Header names lowercased.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public func header(_ lowercasedName: String) -> String? {
        headers.first { $0.name == lowercasedName }?.value
    }

    public var bodyText: String {
        String(decoding: body, as: UTF8.self)
    }
}

/// One blocking HTTP/1.1 connection with keep-alive, for the command-line tools
/// and tests. Responses are parsed by http-parser.
public final class HTTPClientConnection {
    public let host: String
    public let port: Int
    private var descriptor: Int32 = -1

    /// Connects at once; `timeoutSeconds` bounds every later send and receive.
    public init(host: String, port: Int, timeoutSeconds: Double) throws(ClientError) {
        self.host = host
        self.port = port
        descriptor = try Self.connect(host: host, port: port, timeoutSeconds: timeoutSeconds)
    }

    deinit {
        close()
    }

    public func close() {
        if descriptor >= 0 {
            Glibc.close(descriptor)
            descriptor = -1
        }
    }

    /// Sends raw bytes; tests use it for malformed or pipelined requests.
    public func write(_ bytes: [UInt8]) throws(ClientError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw ClientError("send to \(host):\(port) failed: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    /// Sends one request and reads its response.
    public func request(
        _ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8]? = nil
    ) throws(ClientError) -> ClientResponse {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
        for (name, value) in headers {
            head += "\(name): \(value)\r\n"
        }
        if let body {
            head += "Content-Length: \(body.count)\r\n"
        }
        head += "\r\n"
        try write(Array(head.utf8) + (body ?? []))
        return try readResponse(isHead: method == "HEAD")
    }

    /// Reads the next response from the connection.
    public func readResponse(isHead: Bool = false) throws(ClientError) -> ClientResponse {
        let reader = ResponseReader(isHead: isHead)
        if !leftover.isEmpty {
            let pending = leftover
            leftover = []
            try reader.feed(pending)
        }
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while !reader.isComplete {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                let reason = errno == EAGAIN ? "timed out" : String(cString: strerror(errno))
                throw ClientError("receive from \(host):\(port) failed: \(reason)")
            }
            if count == 0 {
                try reader.finish()
                break
            }
            try reader.feed(Array(buffer[0..<count]))
        }
        leftover = reader.takeLeftover() ?? []
        guard let response = reader.response else {
            throw ClientError("connection to \(host):\(port) closed before a complete response")
        }
        return response
    }

    private var leftover: [UInt8] = []

    /// True when the server has closed its side; reads nothing otherwise.
    public func isClosedByPeer(waitMilliseconds: Int32) -> Bool {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, waitMilliseconds) == 1 else { return false }
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, Int32(MSG_PEEK)) == 0
    }

    private static func connect(host: String, port: Int, timeoutSeconds: Double) throws(ClientError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let first = result else {
            throw ClientError("cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(result) }

        let descriptor = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            throw ClientError("socket failed: \(String(cString: strerror(errno)))")
        }
        var timeout = timeval(
            tv_sec: Int(timeoutSeconds), tv_usec: Int((timeoutSeconds.truncatingRemainder(dividingBy: 1)) * 1_000_000))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))

        guard Glibc.connect(descriptor, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(descriptor)
            throw ClientError("connect to \(host):\(port) failed: \(reason)")
        }
        return descriptor
    }
}
