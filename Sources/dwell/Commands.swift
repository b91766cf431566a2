import DwellEventLoop
import DwellRedis
import DwellSupervisor
import DwellWorker
import Glibc

let dwellVersion = "0.1.0"

let topLevelUsage = """
    Usage: dwell COMMAND [options]

    Commands:
      serve       run the long-polling server (supervisor, workers, private Redis)
      publish     publish one message: dwell publish [--url U] CHANNEL JSON
      subscribe   poll channels and print each message as one JSON line
      check       check delivery against a running cluster, with faults
      version     print the version

    Run 'dwell COMMAND --help' for the options of a command.

    """

/// Dispatches to a subcommand; returns the exit status.
func runCommand(_ arguments: [String]) throws(UsageError) -> Int32 {
    guard let command = arguments.first else {
        print(topLevelUsage, terminator: "")
        return 2
    }
    let rest = Array(arguments.dropFirst())

    switch command {
    case "serve":
        return try serve(rest)
    case "worker":
        return try runWorker(rest)
    case "publish":
        return try publish(rest)
    case "subscribe":
        return try subscribe(rest)
    case "check":
        return try check(rest)
    case "version", "--version":
        print("dwell \(dwellVersion)")
        return 0
    case "help", "--help", "-h":
        print(topLevelUsage, terminator: "")
        return 0
    default:
        throw UsageError(message: "unknown command '\(command)'")
    }
}

func serve(_ arguments: [String]) throws(UsageError) -> Int32 {
    let (configuration, _, wantsHelp) = try ServeOptions.parse(arguments, command: "dwell serve")
    if wantsHelp {
        print(ServeOptions.usage, terminator: "")
        return 0
    }
    if let url = configuration.redisURL {
        do {
            _ = try RedisEndpoint(url: url)
        } catch {
            throw UsageError(message: "invalid value '\(url)' for --redis: \(error)")
        }
    }

    Log.level = configuration.logLevel
    Log.context = [("role", "supervisor")]
    let supervisor = Supervisor(loop: EventLoop(), configuration: configuration, executable: executablePath())
    return supervisor.run()
}

/// Runs one worker; the supervisor starts this with descriptors 3 and 4 set up.
func runWorker(_ arguments: [String]) throws(UsageError) -> Int32 {
    let (configuration, workerFlags, _) = try ServeOptions.parse(
        arguments, command: "dwell worker", acceptsWorkerFlags: true)
    guard let descriptorText = workerFlags["listen-fd"] else {
        throw UsageError(message: "missing --listen-fd: 'dwell worker' is started by 'dwell serve'")
    }
    let descriptor = try ServeOptions.integer(descriptorText, flag: "listen-fd", range: 0...65535)
    let slot = try ServeOptions.integer(workerFlags["slot"] ?? "0", flag: "slot", range: 0...1023)
    guard let url = configuration.redisURL else {
        throw UsageError(message: "missing --redis: 'dwell worker' needs the Redis URL")
    }
    let endpoint: RedisEndpoint
    do {
        endpoint = try RedisEndpoint(url: url)
    } catch {
        throw UsageError(message: "invalid value '\(url)' for --redis: \(error)")
    }

    Log.level = configuration.logLevel
    Log.context = [("role", "worker"), ("slot", String(slot))]

    var workerConfiguration = WorkerConfiguration(
        listeningDescriptor: Int32(descriptor), slot: slot, port: configuration.port, redis: endpoint)
    workerConfiguration.holdTimeoutMilliseconds = UInt64(configuration.holdTimeoutSeconds * 1000)
    workerConfiguration.retentionCount = configuration.retentionCount
    workerConfiguration.retentionMilliseconds = UInt64(configuration.retentionSeconds * 1000)
    workerConfiguration.drainTimeoutMilliseconds = UInt64(configuration.drainTimeoutSeconds * 1000)
    workerConfiguration.heartbeatIntervalMilliseconds = UInt64(configuration.heartbeatIntervalSeconds * 1000)
    workerConfiguration.maxPollsPerUser = configuration.maxPollsPerUser
    workerConfiguration.advertisedHost = configuration.advertisedHost ?? hostName()
    // Descriptor 4 is the liveness pipe when the supervisor started this worker.
    if fcntl(4, F_GETFD) >= 0 {
        workerConfiguration.livenessDescriptor = 4
    }

    let worker = Worker(loop: EventLoop(), configuration: workerConfiguration)
    do {
        return try worker.run()
    } catch {
        Log.error("worker.start_failed", ["error": error])
        return 1
    }
}

func hostName() -> String {
    var name = [CChar](repeating: 0, count: 256)
    gethostname(&name, name.count - 1)
    return String(cString: name)
}

/// The path of this executable, so the supervisor can start workers from it.
func executablePath() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard length > 0 else { return CommandLine.arguments[0] }
    return String(cString: buffer)
}
