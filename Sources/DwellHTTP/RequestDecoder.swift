import CHTTPParser

/// Turns the bytes of one connection into requests, one at a time, with http-parser
/// in strict request mode.
///
/// `decode(_:)` stops after each complete request and pauses the parser, so that a
/// pipelined request waits until the server has responded to the one before it.
/// The next call resumes. The decoder enforces the URL, header and body limits inside
/// the parser callbacks and records the first error a callback finds, which wins
/// over the parser's own error number. After a failure it stays failed.
///
/// Debian's libhttp-parser 2.9.4 is built with HTTP_PARSER_STRICT=0: it accepts a
/// space inside or after a header field name, and treats `Transfer-Encoding : chunked`
/// as chunked, which a proxy in front may not. So the decoder itself rejects field
/// names that are not RFC 9110 tokens and targets with whitespace or control bytes.
///
/// An idle decoder keeps no bytes, because the accumulators are empty arrays between requests.
/// Use it only on the thread that owns its connection.
final class RequestDecoder {
    enum Outcome {
        /// Every byte was consumed and no request is complete yet.
        case needsMoreInput
        /// A request is complete, and the bytes after it were not consumed.
        case request(HTTPRequest)
        /// The request is invalid, so the connection gets an error response and closes.
        case failure(RequestDecodingError)
    }

    /// The parser, owned by the decoder. `parser.data` points back at the decoder
    /// without a retain, because the parser never outlives its decoder.
    private let parser: UnsafeMutablePointer<http_parser>
    private let maxURLBytes: Int
    private let maxHeaderBytes: Int
    private let maxBodyBytes: Int

    private var url: [UInt8] = []
    private var headers: [(name: String, value: String)] = []
    private var headerName: [UInt8] = []
    private var headerValue: [UInt8] = []
    private var isHeaderValueInProgress = false
    /// Header section size so far: request line without its target, then each field
    /// as name, value and 4 bytes for ": " and CRLF.
    private var headerByteCount = 0
    private var body: [UInt8] = []
    /// The first error a callback found in the current call to `decode(_:)`.
    private var recordedError: RequestDecodingError?
    private var failure: RequestDecodingError?
    private var isMessageComplete = false
    private var isCompletedMessageUpgrade = false
    private var isCompletedMessageKeepAlive = false

    /// Whether the current request has begun and is not complete yet.
    private(set) var isRequestStarted = false
    /// Whether the current request's header section is complete and its body is not.
    private(set) var areHeadersComplete = false
    /// Whether the last request returned was an upgrade or `CONNECT`, after which
    /// http-parser stops parsing the connection.
    private(set) var isUpgradeRequested = false
    /// Whether the current request sent `Expect: 100-continue` and waits for a
    /// `100 Continue` before sending its body. `takeContinueExpectation()` clears it.
    private var isContinueExpected = false

    init(limits: HTTPLimits) {
        // http_parser_parse_url stores offsets and lengths as 16-bit integers.
        maxURLBytes = min(limits.maxURLBytes, Int(UInt16.max))
        maxHeaderBytes = limits.maxHeaderBytes
        maxBodyBytes = limits.maxBodyBytes
        parser = .allocate(capacity: 1)
        parser.initialize(to: http_parser())
        http_parser_init(parser, HTTP_REQUEST)
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        parser.deinitialize(count: 1)
        parser.deallocate()
    }

    /// Parses `bytes` until a request is complete, an error is found or the bytes run out.
    ///
    /// Returns how many bytes were consumed. After `.request` the caller keeps the
    /// rest and passes it to the next call once the request has its response.
    func decode(_ bytes: UnsafeRawBufferPointer) -> (consumed: Int, outcome: Outcome) {
        if let failure {
            return (0, .failure(failure))
        }
        // http-parser reads a zero-length call as end of stream, which no caller means here.
        guard let start = bytes.baseAddress, !bytes.isEmpty else {
            return (0, .needsMoreInput)
        }

        if parser.pointee.http_errno == HPE_PAUSED.rawValue {
            http_parser_pause(parser, 0)
        }
        let consumed = http_parser_execute(
            parser, requestParserSettings, start.assumingMemoryBound(to: CChar.self), bytes.count)

        if isMessageComplete {
            return (consumed, .request(takeRequest()))
        }

        let parserError = http_errno(rawValue: parser.pointee.http_errno)
        if parserError != HPE_OK {
            let error = recordedError ?? Self.decodingError(for: parserError, maxHeaderBytes)
            fail(error)
            return (consumed, .failure(error))
        }
        guard consumed == bytes.count else {
            // http-parser stops early without an error only after an upgrade request,
            // which completes a message and returns above. Callers rely on
            // `.needsMoreInput` consuming every byte.
            let error = RequestDecodingError.malformed("parser stopped before the end of the input")
            fail(error)
            return (consumed, .failure(error))
        }
        return (consumed, .needsMoreInput)
    }

    /// The decoder's own heap blocks, for memory tests: the object and its parser.
    /// The accumulators hold no block while they are empty.
    var heapAllocations: [UnsafeRawPointer] {
        [UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()), UnsafeRawPointer(parser)]
    }

    /// Returns whether a `100 Continue` is due for the current request, and clears it.
    func takeContinueExpectation() -> Bool {
        defer { isContinueExpected = false }
        return isContinueExpected
    }

    private func fail(_ error: RequestDecodingError) {
        failure = error
        resetAccumulators()
    }

    private func resetAccumulators() {
        url = []
        headers = []
        headerName = []
        headerValue = []
        body = []
        isHeaderValueInProgress = false
        headerByteCount = 0
        recordedError = nil
        isRequestStarted = false
        areHeadersComplete = false
        isContinueExpected = false
    }

    private func takeRequest() -> HTTPRequest {
        let target = String(decoding: url, as: UTF8.self)
        let method = HTTPMethod(parserMethod: parser.pointee.method)
        let (path, query) = Self.splitTarget(url, isConnect: parser.pointee.method == HTTP_CONNECT.rawValue)
        let request = HTTPRequest(
            method: method,
            target: target,
            path: path,
            query: query,
            versionMajor: Int(parser.pointee.http_major),
            versionMinor: Int(parser.pointee.http_minor),
            headers: headers,
            body: body,
            keepAlive: isCompletedMessageKeepAlive)

        isUpgradeRequested = isCompletedMessageUpgrade
        isMessageComplete = false
        resetAccumulators()
        return request
    }

    private static func decodingError(for parserError: http_errno, _ maxHeaderBytes: Int)
        -> RequestDecodingError
    {
        if parserError == HPE_HEADER_OVERFLOW {
            return .headersTooLarge(limit: maxHeaderBytes)
        }
        return .malformed(String(cString: http_errno_description(parserError)))
    }
}

// MARK: - Parser callbacks

extension RequestDecoder {
    fileprivate static func owner(of parser: UnsafeMutablePointer<http_parser>?) -> RequestDecoder {
        // http-parser passes the parser it was called with, whose `data` init set.
        Unmanaged<RequestDecoder>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
    }

    fileprivate func messageBegan() -> Int32 {
        resetAccumulators()
        isRequestStarted = true
        return 0
    }

    fileprivate func urlReceived(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        guard url.count + bytes.count <= maxURLBytes else {
            return record(.urlTooLong(limit: maxURLBytes))
        }
        // The non-strict parser lets a tab or form feed into the target.
        guard !bytes.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
            return record(.malformed("invalid character in request target"))
        }
        url.append(contentsOf: bytes)
        return 0
    }

    fileprivate func headerFieldReceived(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        if isHeaderValueInProgress, storeHeader() != 0 {
            return -1
        }
        if headerByteCount == 0 {
            // Method, two spaces, "HTTP/1.1" and CRLF. The target has a limit of its own.
            let method = String(cString: http_method_str(http_method(parser.pointee.method)))
            headerByteCount = method.utf8.count + 12
        }
        if headerName.isEmpty {
            headerByteCount += 4
        }
        return appendHeaderBytes(bytes, to: &headerName)
    }

    fileprivate func headerValueReceived(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        isHeaderValueInProgress = true
        return appendHeaderBytes(bytes, to: &headerValue)
    }

    fileprivate func headersCompleted() -> Int32 {
        if !headerName.isEmpty || isHeaderValueInProgress, storeHeader() != 0 {
            return -1
        }
        areHeadersComplete = true

        let major = Int(parser.pointee.http_major)
        let minor = Int(parser.pointee.http_minor)
        guard major == 1, minor <= 1 else {
            return record(.versionNotSupported(major: major, minor: minor))
        }
        if let error = transferCodingError() ?? contentLengthError() ?? expectationError() {
            return record(error)
        }
        // NOTE: an HTTP/1.1 request without Host is accepted although RFC 9112 section 3.2
        // requires 400, because routing uses only the path.
        return 0
    }

    fileprivate func bodyReceived(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        guard body.count + bytes.count <= maxBodyBytes else {
            return record(.bodyTooLarge(limit: maxBodyBytes))
        }
        body.append(contentsOf: bytes)
        return 0
    }

    fileprivate func messageCompleted() -> Int32 {
        // The last trailer field of a chunked body is still in progress here.
        if !headerName.isEmpty || isHeaderValueInProgress, storeHeader() != 0 {
            return -1
        }
        isMessageComplete = true
        isCompletedMessageKeepAlive = http_should_keep_alive(parser) != 0
        isCompletedMessageUpgrade = parser.pointee.upgrade != 0
        // Stops http_parser_execute right after this message, so that pipelined
        // requests wait in the caller's buffer until this one has its response.
        http_parser_pause(parser, 1)
        return 0
    }

    /// Appends to the header field in progress unless the header section would exceed its limit.
    private func appendHeaderBytes(_ bytes: UnsafeRawBufferPointer, to field: inout [UInt8]) -> Int32 {
        headerByteCount += bytes.count
        guard headerByteCount <= maxHeaderBytes else {
            return record(.headersTooLarge(limit: maxHeaderBytes))
        }
        field.append(contentsOf: bytes)
        return 0
    }

    /// Moves the field in progress to `headers`, and returns nonzero after recording an
    /// invalid field name. Trailer fields of a chunked body are checked, then dropped.
    private func storeHeader() -> Int32 {
        guard !headerName.isEmpty, headerName.allSatisfy(Self.isTokenCharacter) else {
            return record(.malformed("invalid character in header field name"))
        }

        if !areHeadersComplete {
            let name = String(decoding: headerName.lazy.map(Self.lowercased), as: UTF8.self)
            headers.append((name: name, value: Self.trimmedString(headerValue)))
        }
        headerName = []
        headerValue = []
        isHeaderValueInProgress = false
        return 0
    }

    /// Rejects any transfer coding but a lone `chunked`, because the body of any
    /// other coding would reach the handler still encoded (RFC 9112 section 6.1).
    private func transferCodingError() -> RequestDecodingError? {
        let codings = headers.filter { $0.name == "transfer-encoding" }
        guard !codings.isEmpty else { return nil }

        let value = codings.map(\.value).joined(separator: ", ")
        if codings.count == 1 && value.lowercased() == "chunked" {
            return nil
        }
        return .transferCodingNotImplemented(value)
    }

    private func contentLengthError() -> RequestDecodingError? {
        let length = parser.pointee.content_length
        // http-parser sets content_length to UINT64_MAX when the header is absent.
        guard length != UInt64.max else { return nil }
        guard length <= UInt64(maxBodyBytes) else {
            return .bodyTooLarge(limit: maxBodyBytes)
        }
        body.reserveCapacity(Int(length))
        return nil
    }

    private func expectationError() -> RequestDecodingError? {
        guard let expectation = headers.first(where: { $0.name == "expect" })?.value else {
            return nil
        }
        guard expectation.lowercased() == "100-continue" else {
            return .expectationFailed(expectation)
        }

        // RFC 9110 section 10.1.1: a server must not send 100 Continue to an HTTP/1.0
        // client, and need not when no body follows.
        let hasBody =
            parser.pointee.flags & UInt32(F_CHUNKED.rawValue) != 0
            || (parser.pointee.content_length != UInt64.max && parser.pointee.content_length > 0)
        isContinueExpected = parser.pointee.http_minor >= 1 && hasBody
        return nil
    }

    private func record(_ error: RequestDecodingError) -> Int32 {
        if recordedError == nil {
            recordedError = error
        }
        // on_headers_complete takes any value but 0, 1 and 2 as an error, and the
        // other callbacks take any nonzero value.
        return -1
    }

    /// Returns whether `byte` is a tchar of RFC 9110 section 5.6.2: a letter, a digit
    /// or one of ``!#$%&'*+-.^_`|~``.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"),
            UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default: false
        }
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
    }

    private static func trimmedString(_ bytes: [UInt8]) -> String {
        let isWhitespace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
        guard let first = bytes.firstIndex(where: { !isWhitespace($0) }),
            let last = bytes.lastIndex(where: { !isWhitespace($0) })
        else {
            return ""
        }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}

// MARK: - Request target

extension RequestDecoder {
    /// Splits a request target into its path and query with http_parser_parse_url.
    ///
    /// An absolute-form target (`http://host/a?b`) is reduced to its path, `/` when
    /// it has none. A target the URL parser rejects is returned whole as the path.
    static func splitTarget(_ target: [UInt8], isConnect: Bool) -> (path: String, query: String) {
        var fields = http_parser_url()
        http_parser_url_init(&fields)
        let status = target.withUnsafeBytes { bytes in
            http_parser_parse_url(
                bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count,
                isConnect ? 1 : 0, &fields)
        }
        guard status == 0 else {
            return (String(decoding: target, as: UTF8.self), "")
        }

        let path = component(UF_PATH, of: target, in: fields)
        let query = component(UF_QUERY, of: target, in: fields) ?? ""
        if let path {
            return (path, query)
        }
        // Authority-form (CONNECT host:port) has no path, so the whole target is kept.
        let isAbsoluteForm = fields.field_set & UInt16(1 << UF_SCHEMA.rawValue) != 0
        return (isAbsoluteForm ? "/" : String(decoding: target, as: UTF8.self), query)
    }

    private static func component(
        _ field: http_parser_url_fields, of target: [UInt8], in fields: http_parser_url
    ) -> String? {
        guard fields.field_set & UInt16(1 << field.rawValue) != 0 else { return nil }

        // Swift does not import field_data, an array of anonymous structs, so read it by
        // the header's layout: field_set and port (2 bytes each), then UF_MAX pairs of
        // 16-bit offset and length.
        let range = withUnsafeBytes(of: fields) { raw in
            let entryOffset = 4 + Int(field.rawValue) * 4
            let start = raw.loadUnaligned(fromByteOffset: entryOffset, as: UInt16.self)
            let length = raw.loadUnaligned(fromByteOffset: entryOffset + 2, as: UInt16.self)
            return Int(start)..<(Int(start) + Int(length))
        }
        guard range.upperBound <= target.count else { return nil }
        return String(decoding: target[range], as: UTF8.self)
    }
}

extension HTTPMethod {
    init(parserMethod: UInt32) {
        switch http_method(parserMethod) {
        case HTTP_GET: self = .get
        case HTTP_HEAD: self = .head
        case HTTP_POST: self = .post
        case HTTP_PUT: self = .put
        case HTTP_DELETE: self = .delete
        case HTTP_OPTIONS: self = .options
        default: self = .other(String(cString: http_method_str(http_method(parserMethod))))
        }
    }
}

/// Callbacks shared by every decoder, each finding its decoder through `parser.data`.
/// Byte pointers are valid only during a callback, so every callback copies what it keeps.
private nonisolated(unsafe) let requestParserSettings: UnsafeMutablePointer<http_parser_settings> = {
    let settings = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
    settings.initialize(to: http_parser_settings())
    http_parser_settings_init(settings)

    settings.pointee.on_message_begin = { parser in
        RequestDecoder.owner(of: parser).messageBegan()
    }
    settings.pointee.on_url = { parser, at, length in
        RequestDecoder.owner(of: parser).urlReceived(UnsafeRawBufferPointer(start: at, count: length))
    }
    settings.pointee.on_header_field = { parser, at, length in
        RequestDecoder.owner(of: parser).headerFieldReceived(UnsafeRawBufferPointer(start: at, count: length))
    }
    settings.pointee.on_header_value = { parser, at, length in
        RequestDecoder.owner(of: parser).headerValueReceived(UnsafeRawBufferPointer(start: at, count: length))
    }
    settings.pointee.on_headers_complete = { parser in
        RequestDecoder.owner(of: parser).headersCompleted()
    }
    settings.pointee.on_body = { parser, at, length in
        RequestDecoder.owner(of: parser).bodyReceived(UnsafeRawBufferPointer(start: at, count: length))
    }
    settings.pointee.on_message_complete = { parser in
        RequestDecoder.owner(of: parser).messageCompleted()
    }
    return settings
}()
