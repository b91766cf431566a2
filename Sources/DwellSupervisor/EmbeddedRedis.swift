import DwellEventLoop
import Glibc

/// A private redis-server on a Unix socket in the supervisor's runtime directory,
/// restarted when it dies and stopped last on shutdown.
final class EmbeddedRedis {
    let runtimeDirectory: String
    let socketPath: String
    private let loop: EventLoop
    private let program: String
    private let dataDirectory: String?
    private var process: ChildProcess?
    private var isStopping = false
    private var restartDelayMilliseconds: UInt64 = 100
    private var startedAt: UInt64 = 0
    private var restartTimer: LoopTimer?
    private var onStopped: (() -> Void)?

    var url: String { "unix://" + socketPath }

    init(loop: EventLoop, program: String, dataDirectory: String?) throws(SystemError) {
        self.loop = loop
        self.program = program
        self.dataDirectory = dataDirectory

        let base = getenv("XDG_RUNTIME_DIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/dwell-\(getpid())-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw SystemError(call: "mkdtemp(\(base))", errno: errno)
        }
        runtimeDirectory = String(cString: created)
        socketPath = runtimeDirectory + "/redis.sock"
    }

    /// Starts redis-server and waits until its socket accepts connections.
    ///
    /// This blocks the supervisor for at most `timeoutMilliseconds`, before any
    /// worker exists, so nothing is waiting on the loop meanwhile.
    func start(timeoutMilliseconds: Int = 10_000) throws(SystemError) {
        try spawn()
        var waited = 0
        while !Self.acceptsConnections(socketPath) {
            if process?.hasExited ?? true || waited >= timeoutMilliseconds {
                throw SystemError(call: "redis-server did not open \(socketPath)", errno: ETIMEDOUT)
            }
            var pause = timespec(tv_sec: 0, tv_nsec: 20_000_000)
            nanosleep(&pause, nil)
            waited += 20
            loop.runOnce(blocking: false)
        }
        Log.info("redis.embedded_ready", ["socket": socketPath, "pid": process?.pid ?? 0])
    }

    private func spawn() throws(SystemError) {
        var arguments = [
            "--port", "0", "--unixsocket", socketPath, "--unixsocketperm", "700", "--daemonize", "no",
            "--save", "", "--loglevel", "warning", "--logfile", runtimeDirectory + "/redis.log",
        ]
        if let dataDirectory {
            arguments += ["--dir", dataDirectory, "--appendonly", "yes", "--appendfsync", "everysec"]
        } else {
            arguments += ["--dir", runtimeDirectory, "--appendonly", "no"]
        }

        let program = Self.resolve(self.program)
        process = try ChildProcess(loop: loop, program: program, arguments: arguments) { [unowned self] reason in
            exited(reason)
        }
        startedAt = loop.nowMilliseconds
        Log.info("redis.embedded_started", ["pid": process?.pid ?? 0, "program": program])
    }

    private func exited(_ reason: ChildProcess.ExitReason) {
        process = nil
        if isStopping {
            Log.info("redis.embedded_stopped", ["reason": reason])
            removeRuntimeDirectory()
            onStopped?()
            return
        }

        // A server that stayed up a while crashed once, not in a loop: restart it fast.
        if loop.nowMilliseconds - startedAt >= 10_000 {
            restartDelayMilliseconds = 100
        }
        Log.error("redis.embedded_exited", ["reason": reason, "restart_ms": restartDelayMilliseconds])
        let timer = LoopTimer(loop: loop) { [unowned self] in
            restartTimer?.close()
            restartTimer = nil
            guard !isStopping else { return }
            do {
                try spawn()
            } catch {
                Log.error("redis.embedded_restart_failed", ["error": error])
                exited(.exited(-1))
            }
        }
        timer.start(afterMilliseconds: restartDelayMilliseconds)
        restartTimer = timer
        restartDelayMilliseconds = min(restartDelayMilliseconds * 2, 5_000)
    }

    /// Stops redis-server with SIGTERM and calls `completion` once it has exited.
    func stop(completion: @escaping () -> Void) {
        isStopping = true
        restartTimer?.close()
        restartTimer = nil
        guard let process else {
            removeRuntimeDirectory()
            completion()
            return
        }
        onStopped = completion
        process.signal(SIGTERM)
    }

    private func removeRuntimeDirectory() {
        unlink(socketPath)
        unlink(runtimeDirectory + "/dump.rdb")
        unlink(runtimeDirectory + "/redis.log")
        rmdir(runtimeDirectory)
    }

    /// Finds a program in PATH the way a shell would, so uv_spawn gets a path.
    static func resolve(_ program: String) -> String {
        guard !program.contains("/") else { return program }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(program)"
            if access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return program
    }

    static func acceptsConnections(_ path: String) -> Bool {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }

        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0
    }
}
