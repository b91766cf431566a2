import Glibc

/// The `Date` header value (IMF-fixdate, RFC 9110 section 5.6.7), formatted again
/// only when the wall-clock second changes.
struct HTTPDateCache {
    private var second: time_t = -1
    private var value: [UInt8] = []

    /// Returns the value for the current second, such as `Sun, 06 Nov 1994 08:49:37 GMT`.
    mutating func current() -> [UInt8] {
        let now = time(nil)
        if now != second {
            second = now
            value = Array(Self.format(now).utf8)
        }
        return value
    }

    static func format(_ seconds: time_t) -> String {
        var copy = seconds
        var parts = tm()
        gmtime_r(&copy, &parts)

        let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let weekday = weekdays[Int(parts.tm_wday) % 7]
        let month = months[Int(parts.tm_mon) % 12]
        return "\(weekday), \(twoDigits(parts.tm_mday)) \(month) \(parts.tm_year + 1900) "
            + "\(twoDigits(parts.tm_hour)):\(twoDigits(parts.tm_min)):\(twoDigits(parts.tm_sec)) GMT"
    }

    private static func twoDigits(_ value: Int32) -> String {
        value < 10 ? "0\(value)" : "\(value)"
    }
}
