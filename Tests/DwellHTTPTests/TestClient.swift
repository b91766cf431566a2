import Glibc

struct SocketError: Error, CustomStringConvertible {
    let call: String
    let code: Int32

    init(_ call: String) {
        self.call = call
        code = errno
    }

    var description: String {
        "\(call): \(String(cString: strerror(code))) (errno \(code))"
    }
}

/// Opens a TCP socket listening on 127.0.0.1 at a port the kernel picks, and returns
/// it with the port.
func makeListeningSocket() throws -> (descriptor: Int32, port: UInt16) {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { throw SocketError("socket") }

    var address = loopbackAddress(port: 0)
    let bound = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0, listen(descriptor, 128) == 0 else {
        let error = SocketError("bind/listen")
        close(descriptor)
        throw error
    }

    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            getsockname(descriptor, $0, &length)
        }
    }
    guard named == 0 else {
        let error = SocketError("getsockname")
        close(descriptor)
        throw error
    }
    return (descriptor, UInt16(bigEndian: address.sin_port))
}

func loopbackAddress(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return address
}

/// A non-blocking loopback client that the test thread drives between loop iterations.
final class TestClient {
    let descriptor: Int32
    private(set) var received: [UInt8] = []
    private(set) var isEndOfStream = false
    private(set) var wasReset = false
    private var isClosed = false

    /// Connects to 127.0.0.1:`port`. The kernel completes a loopback handshake from
    /// the listen backlog, so the blocking connect returns before the server accepts.
    init(port: UInt16) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SocketError("socket") }

        var address = loopbackAddress(port: port)
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let error = SocketError("connect")
            Glibc.close(descriptor)
            throw error
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        close()
    }

    /// Writes as much of `bytes` as the socket takes now and returns the count.
    func sendSome(_ bytes: ArraySlice<UInt8>) -> Int {
        let written = bytes.withUnsafeBytes { buffer in
            Glibc.send(descriptor, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
        }
        return written > 0 ? written : 0
    }

    /// Reads everything available without blocking.
    func readAvailable() {
        guard !isClosed, !isEndOfStream else { return }

        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 {
                received += chunk[0..<count]
            } else if count == 0 {
                isEndOfStream = true
                return
            } else {
                if errno == ECONNRESET {
                    wasReset = true
                    isEndOfStream = true
                }
                return
            }
        }
    }

    var receivedText: String {
        String(decoding: received, as: UTF8.self)
    }

    /// Returns the complete responses received so far. `headRequests` lists the
    /// indices of responses to HEAD requests, which have no body.
    func responses(headRequests: Set<Int> = []) -> [ParsedResponse] {
        ParsedResponse.parseAll(received, headRequests: headRequests)
    }

    func shutdownWrite() {
        shutdown(descriptor, Int32(SHUT_WR))
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(descriptor)
    }
}

/// One response as the test client read it. The reader is deliberately small and
/// handles only what the server under test sends, which is Content-Length bodies.
struct ParsedResponse {
    var status: Int
    var reason: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    var bodyText: String {
        String(decoding: body, as: UTF8.self)
    }

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    static func parseAll(_ bytes: [UInt8], headRequests: Set<Int>) -> [ParsedResponse] {
        var responses: [ParsedResponse] = []
        var start = 0
        let separator: [UInt8] = [13, 10, 13, 10]

        while let end = firstIndex(of: separator, in: bytes, from: start) {
            let head = String(decoding: bytes[start..<end], as: UTF8.self)
            var lines = head.components(separatedBy: "\r\n")
            let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2).map(String.init)
            guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return responses }

            var response = ParsedResponse(
                status: status, reason: statusLine.count > 2 ? statusLine[2] : "", headers: [], body: [])
            for line in lines {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let value = line[line.index(after: colon)...].drop { $0 == " " }
                response.headers.append((String(line[..<colon]), String(value)))
            }

            let hasBody = !headRequests.contains(responses.count) && status >= 200 && status != 204 && status != 304
            let length = hasBody ? Int(response.header("content-length") ?? "0") ?? 0 : 0
            let bodyStart = end + separator.count
            guard bodyStart + length <= bytes.count else { return responses }

            response.body = Array(bytes[bodyStart..<(bodyStart + length)])
            responses.append(response)
            start = bodyStart + length
        }
        return responses
    }

    private static func firstIndex(of pattern: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= pattern.count, start <= bytes.count - pattern.count else { return nil }
        for index in start...(bytes.count - pattern.count)
        where bytes[index..<(index + pattern.count)].elementsEqual(pattern) {
            return index
        }
        return nil
    }
}

extension String {
    /// Splits on a string separator without Foundation.
    func components(separatedBy separator: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) {
            parts.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }
}
