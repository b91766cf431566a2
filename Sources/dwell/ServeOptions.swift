import DwellEventLoop
import DwellSupervisor
import Glibc

/// Options of `dwell serve` (and of the internal `dwell worker`), each with an
/// environment variable; a flag wins over its variable.
enum ServeOptions {
    struct Spec {
        let flag: String
        let environment: String?
        let help: String
    }

    static let specs: [Spec] = [
        Spec(flag: "host", environment: "DWELL_HOST", help: "address to listen on (default 127.0.0.1)"),
        Spec(flag: "port", environment: "DWELL_PORT", help: "TCP port to listen on (default 8080)"),
        Spec(flag: "workers", environment: "DWELL_WORKERS", help: "worker processes (default: one per core)"),
        Spec(
            flag: "redis", environment: "DWELL_REDIS_URL",
            help: "redis://host:port/db or unix:///path (default: start a private redis-server)"),
        Spec(
            flag: "hold-timeout", environment: "DWELL_HOLD_TIMEOUT",
            help: "seconds a poll is held before the timeout response (default 25)"),
        Spec(
            flag: "retention-count", environment: "DWELL_RETENTION_COUNT",
            help: "messages kept per channel for replay (default 1000)"),
        Spec(
            flag: "retention-seconds", environment: "DWELL_RETENTION_SECONDS",
            help: "seconds a message is kept for replay (default 300)"),
        Spec(
            flag: "data-dir", environment: "DWELL_DATA_DIR",
            help: "directory for the private redis-server's append-only file (default: none, data in memory)"),
        Spec(
            flag: "drain-timeout", environment: "DWELL_DRAIN_TIMEOUT",
            help: "seconds a stopping worker waits for its connections (default 10)"),
        Spec(
            flag: "worker-stall-timeout", environment: "DWELL_WORKER_STALL_TIMEOUT",
            help: "seconds a worker's event loop may stay silent before it is replaced (default 10)"),
        Spec(
            flag: "heartbeat-interval", environment: "DWELL_HEARTBEAT_INTERVAL",
            help: "seconds between registry heartbeats; a server is dead 2.5 intervals after its last (default 5)"),
        Spec(
            flag: "max-polls-per-user", environment: "DWELL_MAX_POLLS_PER_USER",
            help: "polls one userId may hold at once across the cluster (default 4)"),
        Spec(
            flag: "advertise-host", environment: "DWELL_ADVERTISE_HOST",
            help: "address other machines reach this server at, for the registry (default: the host name)"),
        Spec(
            flag: "redis-server", environment: "DWELL_REDIS_SERVER",
            help: "redis-server program for the private Redis (default: found in PATH)"),
        Spec(flag: "log-level", environment: "DWELL_LOG_LEVEL", help: "debug, info, warning or error (default info)"),
    ]

    static let workerOnlyFlags = ["listen-fd", "slot"]

    static var usage: String {
        var text = """
            Usage: dwell serve [options]

            Runs the long-polling server: a supervisor that forks worker processes
            sharing the port and, unless --redis is given, a private redis-server.

            Options (each also read from the environment variable shown):

            """
        for spec in specs {
            let name = "  --\(spec.flag) VALUE"
            text += name.padding(toLength: 28) + spec.help
            if let variable = spec.environment {
                text += " [\(variable)]"
            }
            text += "\n"
        }
        text += "  -h, --help".padding(toLength: 28) + "show this help\n"
        return text
    }

    /// Builds the configuration from the environment, then the flags.
    static func parse(_ arguments: [String], command: String, acceptsWorkerFlags: Bool = false)
        throws(UsageError) -> (ServeConfiguration, workerFlags: [String: String], wantsHelp: Bool)
    {
        var flags = specs.map { OptionParser.Option(name: $0.flag, takesValue: true) }
        if acceptsWorkerFlags {
            flags += workerOnlyFlags.map { OptionParser.Option(name: $0, takesValue: true) }
        }
        let parser = OptionParser(command: command, options: flags)
        let (given, rest) = try parser.parse(arguments)
        guard rest.isEmpty else {
            throw UsageError(message: "unexpected argument '\(rest[0])'")
        }
        if given.contains(where: { $0.0 == "help" }) {
            return (ServeConfiguration(), [:], true)
        }

        var values: [String: String] = [:]
        for spec in specs {
            if let variable = spec.environment, let value = getenv(variable) {
                values[spec.flag] = String(cString: value)
            }
        }
        var workerFlags: [String: String] = [:]
        for (name, value) in given {
            if workerOnlyFlags.contains(name) {
                workerFlags[name] = value
            } else {
                values[name] = value
            }
        }

        return (try configuration(from: values), workerFlags, false)
    }

    /// The flags whose value is a duration in seconds, and the field each one sets.
    private static let durationFlags: [(String, WritableKeyPath<ServeConfiguration, Double>)] = [
        ("hold-timeout", \.holdTimeoutSeconds), ("retention-seconds", \.retentionSeconds),
        ("drain-timeout", \.drainTimeoutSeconds), ("worker-stall-timeout", \.workerStallTimeoutSeconds),
        ("heartbeat-interval", \.heartbeatIntervalSeconds),
    ]

    private static func configuration(from values: [String: String]) throws(UsageError) -> ServeConfiguration {
        var configuration = ServeConfiguration()
        if let host = values["host"] {
            guard !host.isEmpty else { throw UsageError(message: "invalid value '' for --host: give an address") }
            configuration.host = host
        }
        if let port = values["port"] {
            configuration.port = try integer(port, flag: "port", range: 0...65535)
        }
        if let workers = values["workers"] {
            configuration.workers = try integer(workers, flag: "workers", range: 0...1024)
        }

        if let value = values["retention-count"] {
            configuration.retentionCount = try integer(value, flag: "retention-count", range: 1...1_000_000)
        }
        for (flag, field) in durationFlags {
            if let value = values[flag] {
                configuration[keyPath: field] = try duration(value, flag: flag)
            }
        }

        configuration.redisURL = values["redis"].flatMap { $0.isEmpty ? nil : $0 }
        if let value = values["max-polls-per-user"] {
            configuration.maxPollsPerUser = try integer(value, flag: "max-polls-per-user", range: 1...100_000)
        }
        if let value = values["advertise-host"], !value.isEmpty {
            configuration.advertisedHost = value
        }

        configuration.dataDirectory = values["data-dir"].flatMap { $0.isEmpty ? nil : $0 }
        if let value = values["redis-server"], !value.isEmpty {
            configuration.redisServerProgram = value
        }
        if let value = values["log-level"] {
            guard let level = LogLevel(name: value) else {
                throw UsageError(message: "invalid value '\(value)' for --log-level: use debug, info, warning or error")
            }
            configuration.logLevel = level
        }
        return configuration
    }

    static func integer(_ text: String, flag: String, range: ClosedRange<Int>) throws(UsageError) -> Int {
        guard let value = Int(text), range.contains(value) else {
            throw UsageError(
                message:
                    "invalid value '\(text)' for --\(flag): use a whole number from \(range.lowerBound) to \(range.upperBound)"
            )
        }
        return value
    }

    /// Seconds as a decimal number (`25`, `0.5`), at least 1 ms and at most one day;
    /// hexadecimal, exponents, signs and spaces are rejected.
    static func duration(_ text: String, flag: String) throws(UsageError) -> Double {
        let isDecimal =
            !text.isEmpty && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E }
            && text.utf8.filter { $0 == 0x2E }.count <= 1 && text.utf8.first != 0x2E && text.utf8.last != 0x2E
        guard isDecimal, let value = Double(text), value >= 0.001, value <= 86_400 else {
            throw UsageError(
                message: "invalid value '\(text)' for --\(flag): use seconds from 0.001 to 86400, such as 25 or 0.5")
        }
        return value
    }
}

extension String {
    func padding(toLength length: Int) -> String {
        count >= length ? self + " " : self + String(repeating: " ", count: length - count)
    }
}
