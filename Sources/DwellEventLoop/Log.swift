import CDwellShim
import Glibc

/// Severity of a log event; events below the configured level are dropped.
public enum LogLevel: Int, Comparable, Sendable {
    case debug, info, warning, error

    public init?(name: String) {
        switch name {
        case "debug": self = .debug
        case "info": self = .info
        case "warning", "warn": self = .warning
        case "error": self = .error
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .debug: "debug"
        case .info: "info"
        case .warning: "warning"
        case .error: "error"
        }
    }

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Process-wide structured logger: one `key=value` event per line on stderr.
///
/// Each line goes out in one `write(2)`, so the supervisor and its workers can
/// share a pipe without interleaving. Call only from the loop thread.
public enum Log {
    public nonisolated(unsafe) static var level: LogLevel = .info
    /// Fixed fields put after `level` on every line, such as `role` and `slot`.
    public nonisolated(unsafe) static var context: [(String, String)] = []

    public static func debug(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) {
        emit(.debug, event, fields)
    }

    public static func info(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) {
        emit(.info, event, fields)
    }

    public static func warning(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) {
        emit(.warning, event, fields)
    }

    public static func error(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) {
        emit(.error, event, fields)
    }

    public static func isEnabled(_ candidate: LogLevel) -> Bool {
        candidate >= level
    }

    private static func emit(_ severity: LogLevel, _ event: String, _ fields: KeyValuePairs<String, Any>) {
        guard severity >= level else { return }

        var line = "ts=\(timestamp()) level=\(severity.name) pid=\(getpid())"
        for (key, value) in context {
            line += " \(key)=\(quoted(value))"
        }
        line += " event=\(event)"
        for (key, value) in fields {
            line += " \(key)=\(quoted(String(describing: value)))"
        }
        line += "\n"

        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { dwell_write_all(2, $0.baseAddress, $0.count) }
    }

    /// Quotes values with spaces, quotes or `=`, so each line stays machine-readable.
    static func quoted(_ value: String) -> String {
        let needsQuotes =
            value.isEmpty
            || value.utf8.contains { byte in
                byte == 0x20 || byte == 0x22 || byte == 0x3D || byte < 0x20 || byte == 0x5C
            }
        guard needsQuotes else { return value }

        var escaped = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            default:
                if scalar.value < 0x20 {
                    escaped += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return escaped + "\""
    }

    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let millis = Int(now.tv_nsec / 1_000_000)
        return String(
            format4(Int(parts.tm_year) + 1900) + "-" + format2(Int(parts.tm_mon) + 1) + "-"
                + format2(Int(parts.tm_mday)) + "T" + format2(Int(parts.tm_hour)) + ":"
                + format2(Int(parts.tm_min)) + ":" + format2(Int(parts.tm_sec)) + "."
                + format3(millis) + "Z")
    }

    private static func format2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
    private static func format3(_ n: Int) -> String { n < 10 ? "00\(n)" : n < 100 ? "0\(n)" : "\(n)" }
    private static func format4(_ n: Int) -> String { "\(n)" }
}
