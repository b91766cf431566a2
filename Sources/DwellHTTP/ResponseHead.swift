import CHTTPParser

/// Encodes a response's status line and header section.
enum ResponseHead {
    /// The `Connection` field the server adds to a response.
    enum ConnectionField {
        case none
        case close
        case keepAlive
    }

    /// Fields the server writes itself, so a handler's fields of these names are dropped.
    private static let serverFieldNames: Set<String> = [
        "content-length", "connection", "date", "transfer-encoding",
    ]

    /// Returns the status line and header section, ending with the blank line.
    ///
    /// `contentLength` is nil for a status that has no body (1xx, 204), which must
    /// not carry the field. Handler fields lose any CR, LF and NUL, so that no value
    /// can start a header of its own.
    static func encode(
        status: Int,
        headers: [(String, String)],
        contentLength: Int?,
        connection: ConnectionField,
        date: [UInt8]
    ) -> [UInt8] {
        var head: [UInt8] = []
        head.reserveCapacity(160 + headers.count * 48)

        append("HTTP/1.1 \(status) \(reasonPhrase(for: status))\r\n", to: &head)
        append("Date: ", to: &head)
        head.append(contentsOf: date)
        append("\r\n", to: &head)
        if let contentLength {
            append("Content-Length: \(contentLength)\r\n", to: &head)
        }
        switch connection {
        case .none: break
        case .close: append("Connection: close\r\n", to: &head)
        case .keepAlive: append("Connection: keep-alive\r\n", to: &head)
        }

        for (name, value) in headers where !serverFieldNames.contains(name.lowercased()) {
            appendSanitized(name, to: &head)
            append(": ", to: &head)
            appendSanitized(value, to: &head)
            append("\r\n", to: &head)
        }
        append("\r\n", to: &head)
        return head
    }

    /// Returns the RFC reason phrase from http-parser's table, or "" for an
    /// unregistered status, which RFC 9112 section 4 allows.
    static func reasonPhrase(for status: Int) -> String {
        guard let code = UInt32(exactly: status) else { return "" }

        let phrase = String(cString: http_status_str(http_status(code)))
        return phrase == "<unknown>" ? "" : phrase
    }

    private static func append(_ text: String, to head: inout [UInt8]) {
        head.append(contentsOf: text.utf8)
    }

    private static func appendSanitized(_ text: String, to head: inout [UInt8]) {
        for byte in text.utf8 {
            head.append(byte == 0x0D || byte == 0x0A || byte == 0x00 ? 0x20 : byte)
        }
    }
}
