import DwellClient
import Foundation
import Testing

/// Errors of the test harness itself, as opposed to failed expectations.
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass.
func waitUntil(_ seconds: Double = 10, _ what: String, condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if (try? condition()) == true { return }
        Thread.sleep(forTimeInterval: 0.02)
    }
    throw HarnessError("timed out after \(seconds) s waiting for \(what)")
}

/// A loopback port that was free a moment ago.
func freePort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
        }
    }
    guard bound else { throw HarnessError("cannot bind a loopback port: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A child process whose output goes to a log file, stopped by pid.
final class ChildUnderTest {
    let process = Process()
    let logPath: String
    let name: String

    init(name: String, executable: String, arguments: [String], environment: [String: String] = [:]) throws {
        self.name = name
        logPath = NSTemporaryDirectory() + "dwell-test-\(name)-\(UUID().uuidString.prefix(8)).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = log
        process.standardError = log
        var variables = ProcessInfo.processInfo.environment
        for (key, value) in environment {
            variables[key] = value
        }
        variables = variables.filter { !$0.key.hasPrefix("DWELL_") || environment[$0.key] != nil }
        process.environment = variables
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    func signal(_ number: Int32) {
        if process.isRunning {
            kill(process.processIdentifier, number)
        }
    }

    /// Sends SIGTERM, waits up to `seconds`, then SIGKILL; returns the exit status.
    @discardableResult
    func stop(seconds: Double = 15) -> Int32 {
        signal(SIGTERM)
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        if process.isRunning {
            signal(SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: logPath)
    }
}

/// A redis-server of the test's own on a free loopback port.
final class RedisUnderTest {
    let port: Int
    private(set) var child: ChildUnderTest
    let directory: String

    init(port: Int? = nil) throws {
        self.port = try port ?? freePort()
        directory = NSTemporaryDirectory() + "dwell-redis-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        child = try Self.start(port: self.port, directory: directory)
    }

    private static func start(port: Int, directory: String) throws -> ChildUnderTest {
        let child = try ChildUnderTest(
            name: "redis-\(port)", executable: try findProgram("redis-server"),
            arguments: [
                "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory,
            ])
        try waitUntil(10, "redis-server on port \(port)") {
            let connection = try HTTPClientConnection(host: "127.0.0.1", port: port, timeoutSeconds: 1)
            try connection.write(Array("PING\r\n".utf8))
            return !connection.isClosedByPeer(waitMilliseconds: 50)
        }
        return child
    }

    var url: String { "redis://127.0.0.1:\(port)" }

    func stop() {
        child.stop()
    }

    func restart() throws {
        child.stop()
        child = try Self.start(port: port, directory: directory)
    }

    deinit {
        child.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

func findProgram(_ name: String) throws -> String {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
    }
    for path in ["/usr/bin/\(name)", "/usr/sbin/\(name)"] where FileManager.default.isExecutableFile(atPath: path) {
        return path
    }
    throw HarnessError("\(name) not found in PATH; scripts/test installs it")
}

/// The dwell binary under test: DWELL_BINARY, or the debug build of this checkout.
func dwellBinary() throws -> String {
    if let path = ProcessInfo.processInfo.environment["DWELL_BINARY"] {
        return path
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let path = root.appendingPathComponent(".build/debug/dwell").path
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw HarnessError("dwell binary not found at \(path); run scripts/test or set DWELL_BINARY")
    }
    return path
}

/// `dwell serve` with its own port, against the given Redis.
final class DwellUnderTest {
    let port: Int
    let child: ChildUnderTest

    init(redis: RedisUnderTest?, workers: Int = 1, holdTimeout: Double = 25, extra: [String] = []) throws {
        port = try freePort()
        var arguments = [
            "serve", "--port", String(port), "--workers", String(workers), "--hold-timeout", String(holdTimeout),
        ]
        if let redis {
            arguments += ["--redis", redis.url]
        }
        child = try ChildUnderTest(name: "dwell-\(port)", executable: try dwellBinary(), arguments: arguments + extra)
        try waitUntilHealthy()
    }

    func waitUntilHealthy(seconds: Double = 15) throws {
        try waitUntil(seconds, "dwell on port \(port) to report ok health") {
            try health().status == 200
        }
    }

    func client(timeout: Double = 30) throws -> DwellClient {
        try DwellClient(url: "http://127.0.0.1:\(port)", timeoutSeconds: timeout)
    }

    func connection(timeout: Double = 30) throws -> HTTPClientConnection {
        try HTTPClientConnection(host: "127.0.0.1", port: port, timeoutSeconds: timeout)
    }

    func health() throws -> ClientResponse {
        try connection(timeout: 5).request("GET", "/api/poll/health")
    }

    func healthObject() throws -> [String: Any] {
        let response = try health()
        return try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
    }

    func heldPolls() throws -> Int {
        (try healthObject()["heldPolls"] as? NSNumber)?.intValue ?? -1
    }

    deinit {
        child.stop()
    }
}

/// Runs `body` on its own thread, so a blocking poll can wait while the test
/// publishes; `value(timeout:)` waits for the result.
final class Background<T>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<T, Error>?

    init(_ body: @escaping () throws -> T) {
        let thread = Thread { [self] in
            result = Result { try body() }
            done.signal()
        }
        thread.start()
    }

    func value(timeout: Double = 30) throws -> T {
        guard done.wait(timeout: .now() + timeout) == .success, let result else {
            throw HarnessError("background call did not finish within \(timeout) s")
        }
        return try result.get()
    }
}

func jsonObject(_ response: ClientResponse) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
        throw HarnessError("not a JSON object: \(response.bodyText)")
    }
    return object
}
