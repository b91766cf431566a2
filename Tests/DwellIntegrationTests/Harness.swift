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

/// The pids of children still running, stopped with SIGTERM when the test process
/// exits, so a failed test whose objects outlive it leaves no server behind. A
/// supervisor then stops its own workers and private Redis.
enum LiveChildren {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var pids = Set<pid_t>()
    nonisolated(unsafe) private static var isHookInstalled = false

    static func add(_ pid: pid_t) {
        lock.withLock {
            pids.insert(pid)
            if !isHookInstalled {
                isHookInstalled = true
                atexit { LiveChildren.killAll() }
            }
        }
    }

    static func remove(_ pid: pid_t) {
        lock.withLock { _ = pids.remove(pid) }
    }

    private static func killAll() {
        lock.withLock {
            for pid in pids {
                kill(pid, SIGTERM)
            }
        }
    }
}

/// A child process whose output goes to a log file, stopped by pid.
///
/// Started with posix_spawn rather than Foundation's Process: the test runner's
/// threads block most signals, a child inherits that mask, and a child that
/// cannot receive SIGTERM or SIGHUP would make the signal tests meaningless.
final class ChildUnderTest {
    let pid: pid_t
    let logPath: String
    let name: String
    private var exitStatus: Int32?

    init(name: String, executable: String, arguments: [String], environment: [String: String] = [:]) throws {
        self.name = name
        logPath = NSTemporaryDirectory() + "dwell-test-\(name)-\(UUID().uuidString.prefix(8)).log"

        var variables = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("DWELL_") }
        for (key, value) in environment {
            variables[key] = value
        }
        var argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) }
        argv.append(nil)
        var envp: [UnsafeMutablePointer<CChar>?] = variables.map { strdup("\($0.key)=\($0.value)") }
        envp.append(nil)
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var defaultSignals = sigset_t()
        sigfillset(&defaultSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, &attributes, &argv, &envp)
        guard status == 0 else {
            throw HarnessError("posix_spawn \(executable) failed: \(String(cString: strerror(status)))")
        }
        pid = child
        LiveChildren.add(child)
    }

    /// True until the child has exited; reaps it once it has.
    var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            exitStatus = status
            LiveChildren.remove(pid)
            return false
        }
        return true
    }

    /// The exit code, or 128 + the signal number for a child killed by a signal.
    var terminationStatus: Int32 {
        guard let status = exitStatus else { return -1 }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    func signal(_ number: Int32) {
        if isRunning {
            kill(pid, number)
        }
    }

    /// Waits up to `seconds` for the child to exit on its own; returns its status.
    @discardableResult
    func waitForExit(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        return isRunning ? nil : terminationStatus
    }

    /// Sends `signal` (SIGTERM by default), waits up to `seconds`, then SIGKILL;
    /// returns the exit status.
    @discardableResult
    func stop(seconds: Double = 15, signal number: Int32 = SIGTERM) -> Int32 {
        signal(number)
        if let status = waitForExit(seconds: seconds) {
            return status
        }
        signal(SIGKILL)
        return waitForExit(seconds: 10) ?? -1
    }

    deinit {
        if isRunning {
            kill(pid, SIGKILL)
            _ = waitForExit(seconds: 10)
        }
        try? FileManager.default.removeItem(atPath: logPath)
    }
}

/// A redis-server of the test's own on a free loopback port.
///
/// A port found free can be taken by another test's connection before the
/// server binds it, so a server that exits at start is retried on a new port.
final class RedisUnderTest {
    let port: Int
    private(set) var child: ChildUnderTest
    let directory: String

    init(port fixedPort: Int? = nil) throws {
        directory = NSTemporaryDirectory() + "dwell-redis-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var lastError: Error = HarnessError("redis-server did not start")
        for _ in 0..<5 {
            let candidate = try fixedPort ?? freePort()
            do {
                child = try Self.start(port: candidate, directory: directory)
                port = candidate
                return
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private static func start(port: Int, directory: String) throws -> ChildUnderTest {
        let child = try ChildUnderTest(
            name: "redis-\(port)", executable: try findProgram("redis-server"),
            arguments: [
                "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory,
            ])
        do {
            try waitUntil(10, "redis-server on port \(port)") {
                guard child.isRunning else { throw HarnessError("redis-server exited: \(child.log)") }
                _ = try HTTPClientConnection(host: "127.0.0.1", port: port, timeoutSeconds: 1)
                return true
            }
        } catch {
            child.stop(signal: SIGKILL)
            throw error
        }
        return child
    }

    var url: String { "redis://127.0.0.1:\(port)" }

    /// Kills the server, as a crash or a lost machine would.
    func stop() {
        child.stop(signal: SIGKILL)
    }

    func restart() throws {
        child.stop(signal: SIGKILL)
        child = try Self.start(port: port, directory: directory)
    }

    deinit {
        child.stop(signal: SIGKILL)
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
        var lastError: Error = HarnessError("dwell did not start")
        for _ in 0..<5 {
            let candidate = try freePort()
            var arguments = [
                "serve", "--port", String(candidate), "--workers", String(workers), "--hold-timeout",
                String(holdTimeout),
            ]
            if let redis {
                arguments += ["--redis", redis.url]
            }
            let started = try ChildUnderTest(
                name: "dwell-\(candidate)", executable: try dwellBinary(), arguments: arguments + extra)
            // A port taken between the check and the bind makes dwell exit at once.
            if started.waitForExit(seconds: 0.2) == nil || !started.log.contains("Address already in use") {
                port = candidate
                child = started
                try waitUntilHealthy()
                return
            }
            lastError = HarnessError("dwell could not bind port \(candidate): \(started.log)")
        }
        throw lastError
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
