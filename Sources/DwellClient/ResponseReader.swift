import CHTTPParser

/// Turns response bytes into a `ClientResponse` with http-parser.
///
/// The parser is paused at the end of each message, so bytes of a following
/// pipelined response are kept for the next read instead of being lost.
final class ResponseReader {
    private var parser = http_parser()
    private var settings = http_parser_settings()
    private var status = 0
    private var headers: [(name: String, value: String)] = []
    private var currentName: [UInt8] = []
    private var currentValue: [UInt8] = []
    private var isReadingValue = false
    private var body: [UInt8] = []
    private var leftover: [UInt8]?
    private(set) var isComplete = false
    private let isHead: Bool

    init(isHead: Bool) {
        self.isHead = isHead
        http_parser_init(&parser, HTTP_RESPONSE)
        settings.on_header_field = { parser, data, length in
            let reader = ResponseReader.owner(parser)
            if reader.isReadingValue {
                reader.storeHeader()
            }
            reader.currentName.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        settings.on_header_value = { parser, data, length in
            let reader = ResponseReader.owner(parser)
            reader.isReadingValue = true
            reader.currentValue.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        settings.on_headers_complete = { parser in
            let reader = ResponseReader.owner(parser)
            if reader.isReadingValue {
                reader.storeHeader()
            }
            reader.status = Int(parser!.pointee.status_code)
            // 1 tells http-parser that a response to HEAD has no body.
            return reader.isHead ? 1 : 0
        }
        settings.on_body = { parser, data, length in
            ResponseReader.owner(parser).body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        settings.on_message_complete = { parser in
            let reader = ResponseReader.owner(parser)
            if reader.status == 100 {
                // An interim 100 Continue: wait for the final response.
                reader.status = 0
                reader.headers = []
                return 0
            }
            reader.isComplete = true
            http_parser_pause(parser, 1)
            return 0
        }
    }

    private static func owner(_ parser: UnsafeMutablePointer<http_parser>?) -> ResponseReader {
        Unmanaged<ResponseReader>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
    }

    private func storeHeader() {
        let name = String(decoding: currentName, as: UTF8.self).lowercased()
        headers.append((name, String(decoding: currentValue, as: UTF8.self)))
        currentName = []
        currentValue = []
        isReadingValue = false
    }

    func feed(_ bytes: [UInt8]) throws(ClientError) {
        parser.data = Unmanaged.passUnretained(self).toOpaque()
        let parsed = bytes.withUnsafeBytes { raw in
            http_parser_execute(&parser, &settings, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
        }
        let error = http_errno(parser.http_errno)
        if isComplete {
            if parsed < bytes.count {
                leftover = Array(bytes[parsed...])
            }
            return
        }
        guard error == HPE_OK else {
            throw ClientError("invalid HTTP response: \(String(cString: http_errno_description(error)))")
        }
    }

    /// Tells the parser the connection ended, which completes a body delimited by close.
    func finish() throws(ClientError) {
        guard !isComplete else { return }
        parser.data = Unmanaged.passUnretained(self).toOpaque()
        http_parser_execute(&parser, &settings, nil, 0)
    }

    func takeLeftover() -> [UInt8]? {
        defer { leftover = nil }
        return leftover
    }

    var response: ClientResponse? {
        isComplete ? ClientResponse(status: status, headers: headers, body: body) : nil
    }
}
