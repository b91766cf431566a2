import Glibc

/// A failure to start or reach the test's redis-server.
struct RedisServerError: Error, CustomStringConvertible {
    let description: String
}

/// A redis-server child process for one test, listening on a loopback port picked at
/// run time and on a Unix socket in a temporary directory, without persistence.
///
/// Tests stop it by pid only, so no other Redis on the machine is touched.
final class RedisServerProcess {
    let port: Int
    let directory: String
    let socketPath: String
    private(set) var pid: pid_t = 0

    init() throws {
        var template = Array("/tmp/dwell-redis-test-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw RedisServerError(description: "mkdtemp failed: errno \(errno)")
        }
        directory = String(cString: created)
        socketPath = directory + "/redis.sock"

        // Another process can take the picked port before redis-server binds it, so a
        // failed start is retried on a fresh port.
        var lastError: Error = RedisServerError(description: "redis-server did not start")
        for _ in 0..<3 {
            do {
                let candidate = try Self.freeLoopbackPort()
                let child = try Self.launch(port: candidate, directory: directory, socketPath: socketPath)
                port = candidate
                pid = child
                return
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    deinit {
        stop()
        unlink(socketPath)
        unlink(directory + "/redis.log")
        rmdir(directory)
    }

    /// Starts redis-server again on the same port and socket, after `crash()` or `stop()`.
    func restart() throws {
        precondition(pid == 0, "redis-server is still running")
        pid = try Self.launch(port: port, directory: directory, socketPath: socketPath)
    }

    /// Kills the server with SIGKILL, as a crash would, and reaps it.
    func crash() {
        terminate(signal: SIGKILL)
    }

    /// Stops the server with SIGTERM and reaps it.
    func stop() {
        terminate(signal: SIGTERM)
    }

    /// Freezes the server with SIGSTOP. Its sockets stay open, but it sends no reply.
    func pause() {
        if pid != 0 {
            kill(pid, SIGSTOP)
        }
    }

    func resume() {
        if pid != 0 {
            kill(pid, SIGCONT)
        }
    }

    /// Kills a paused server without resuming it first, so that the kernel resets the
    /// connections whose sent data the server never read.
    func crashWhilePaused() {
        terminate(signal: SIGKILL, resumingFirst: false)
    }

    private func terminate(signal: Int32, resumingFirst: Bool = true) {
        guard pid != 0 else { return }
        if resumingFirst {
            kill(pid, SIGCONT)
        }
        kill(pid, signal)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
        pid = 0
    }

    /// Spawns redis-server, waits until it listens and returns its pid.
    private static func launch(port: Int, directory: String, socketPath: String) throws -> pid_t {
        let arguments = [
            "/usr/bin/redis-server",
            "--port", String(port), "--bind", "127.0.0.1",
            "--unixsocket", socketPath, "--unixsocketperm", "700",
            "--save", "", "--appendonly", "no",
            "--dir", directory, "--logfile", directory + "/redis.log",
        ]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer {
            for argument in argv {
                free(argument)
            }
        }

        // The test runner's threads block most signals, and a spawned child inherits the
        // mask, so redis-server would never see the SIGTERM that stops it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var child: pid_t = 0
        let status = posix_spawn(&child, arguments[0], nil, &attributes, &argv, environ)
        guard status == 0 else {
            throw RedisServerError(description: "posix_spawn redis-server failed: errno \(status)")
        }

        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while ContinuousClock.now < deadline {
            var exitStatus: Int32 = 0
            if waitpid(child, &exitStatus, WNOHANG) == child {
                throw RedisServerError(
                    description: "redis-server exited during startup on port \(port), see \(directory)/redis.log")
            }
            if canConnect(port: port), access(socketPath, F_OK) == 0 {
                return child
            }
            usleep(5_000)
        }
        kill(child, SIGKILL)
        waitpid(child, nil, 0)
        throw RedisServerError(description: "redis-server did not listen on port \(port) within 10 s")
    }

    private static func loopbackAddress(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    private static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopbackAddress(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return result == 0
    }

    /// Binds port 0 on loopback and returns the port that the kernel chose.
    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RedisServerError(description: "socket failed: errno \(errno)") }
        defer { close(fd) }

        var address = loopbackAddress(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw RedisServerError(description: "bind to 127.0.0.1:0 failed: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Counts the entries of /proc/self/fd, which are this process's open descriptors.
/// The descriptors of this process connected to `port` on the loopback address.
///
/// Counting only these, not every descriptor, keeps the count independent of
/// tests in other suites that open sockets at the same time.
func openConnectionCount(toPort port: Int) -> Int {
    guard let directory = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(directory) }
    var count = 0
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let descriptor = Int32(name) else { continue }
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let isPeer = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(descriptor, $0, &length) == 0 }
        }
        if isPeer, address.sin_family == sa_family_t(AF_INET), Int(UInt16(bigEndian: address.sin_port)) == port {
            count += 1
        }
    }
    return count
}

/// A loopback listener that never accepts, with its one-slot accept queue already full,
/// so that a new connect to it stays in progress until the client gives up.
final class StalledListener {
    let port: Int
    private var descriptors: [Int32] = []

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw RedisServerError(description: "socket failed: errno \(errno)") }
        descriptors.append(listener)

        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let isListening = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(listener, pointer, length) == 0 && getsockname(listener, pointer, &length) == 0
                    && listen(listener, 0) == 0
            }
        }
        guard isListening else { throw RedisServerError(description: "listen failed: errno \(errno)") }
        port = Int(UInt16(bigEndian: address.sin_port))

        // With a backlog of 0, Linux queues one connection and drops the SYN of the next.
        let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        descriptors.append(filler)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(filler, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }

    deinit {
        for descriptor in descriptors {
            close(descriptor)
        }
    }
}
