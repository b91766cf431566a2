import DwellClient
import Foundation

let checkUsage = """
    Usage: dwell check --url URL [--url URL...] [options]

    Runs publishers and subscribers against a running cluster and checks that
    every acknowledged message reached every subscriber of its channel, in id
    order. Messages are told apart by epoch and id. A message that Redis lost
    with its data, in an epoch the subscriber was told to leave (reset), counts
    as "lost to reset", not as missing. Exits 1 on a missing message or an order
    violation.

    Options:
      --url URL               a server to use; repeat for several (required)
      --publishers N          publishing threads (default 2)
      --subscribers N         polling threads, each on every channel (default 4)
      --channels N            channels to spread messages over (default 4)
      --duration SECONDS      how long to publish (default 60)
      --drain SECONDS         how long subscribers may take to catch up (default 30)
      --supervisor-pid PID    a `dwell serve` to inject faults into; repeat for several
      --fault-interval SECONDS  time between two faults (default 5)
      --faults LIST           comma-separated, in turn: kill-worker (SIGKILL a worker),
                              hup (SIGHUP: rolling restart), restart-redis (SIGTERM the
                              private redis-server, which the supervisor restarts)
                              (default kill-worker,hup,restart-redis)

    """

func check(_ arguments: [String]) throws(UsageError) -> Int32 {
    let names = [
        "url", "publishers", "subscribers", "channels", "duration", "drain", "supervisor-pid", "fault-interval",
        "faults",
    ]
    let parser = OptionParser(command: "dwell check", options: names.map { .init(name: $0, takesValue: true) })
    let (given, rest) = try parser.parse(arguments)
    if given.contains(where: { $0.0 == "help" }) {
        print(checkUsage, terminator: "")
        return 0
    }
    guard rest.isEmpty else {
        throw UsageError(message: "unexpected argument '\(rest[0])'")
    }
    func values(_ name: String) -> [String] { given.filter { $0.0 == name }.map(\.1) }

    var options = DeliveryChecker.Options(urls: values("url"))
    guard !options.urls.isEmpty else {
        throw UsageError(message: "missing --url: name at least one server, such as http://127.0.0.1:8080")
    }
    if let value = values("publishers").last {
        options.publishers = try ServeOptions.integer(value, flag: "publishers", range: 1...256)
    }
    if let value = values("subscribers").last {
        options.subscribers = try ServeOptions.integer(value, flag: "subscribers", range: 1...1024)
    }
    if let value = values("channels").last {
        options.channels = try ServeOptions.integer(value, flag: "channels", range: 1...64)
    }
    if let value = values("duration").last {
        options.durationSeconds = try ServeOptions.duration(value, flag: "duration")
    }
    if let value = values("drain").last {
        options.drainSeconds = try ServeOptions.duration(value, flag: "drain")
    }
    let supervisors = try values("supervisor-pid").map { text throws(UsageError) in
        Int32(try ServeOptions.integer(text, flag: "supervisor-pid", range: 1...Int(Int32.max)))
    }
    let interval = try ServeOptions.duration(values("fault-interval").last ?? "5", flag: "fault-interval")
    let faults = try FaultSchedule.parse(values("faults").last ?? "kill-worker,hup,restart-redis")

    let checker = DeliveryChecker(options: options)
    let schedule = FaultSchedule(
        supervisors: supervisors, faults: faults, intervalSeconds: interval, durationSeconds: options.durationSeconds)
    schedule.start()
    let (reports, acknowledged, retries) = checker.run()
    schedule.stop()

    print(summary(reports, acknowledged: acknowledged, retries: retries, faults: schedule.counts))
    let isBroken = reports.contains { $0.missing > 0 || $0.outOfOrder > 0 }
    return isBroken ? 1 : 0
}

private func summary(
    _ reports: [DeliveryChecker.SubscriberReport], acknowledged: Int, retries: Int, faults: [String: Int]
) -> String {
    let columns = [
        "subscriber", "acknowledged", "received", "missing", "duplicates", "out of order", "resets",
        "lost to reset",
    ]
    var lines = ["| " + columns.joined(separator: " | ") + " |", "|" + columns.map { _ in " --- |" }.joined()]
    for report in reports {
        let cells = [
            report.name, String(report.acknowledged), String(report.received), String(report.missing),
            String(report.duplicates), String(report.outOfOrder), String(report.resets), String(report.lostToReset),
        ]
        lines.append("| " + cells.joined(separator: " | ") + " |")
    }
    let faultText = faults.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    lines.append("")
    lines.append("messages acknowledged: \(acknowledged); publish attempts retried: \(retries)")
    lines.append("faults injected: \(faultText.isEmpty ? "none" : faultText)")
    let isBroken = reports.contains { $0.missing > 0 || $0.outOfOrder > 0 }
    lines.append("result: \(isBroken ? "FAILED" : "ok")")
    return lines.joined(separator: "\n")
}

/// Injects faults into supervisors at a fixed interval, in turn, on its own thread.
final class FaultSchedule: @unchecked Sendable {
    enum Fault: String {
        case killWorker = "kill-worker"
        case hup
        case restartRedis = "restart-redis"
    }

    private let supervisors: [Int32]
    private let faults: [Fault]
    private let intervalSeconds: Double
    private let durationSeconds: Double
    private let lock = NSLock()
    private var isRunning = true
    private var applied: [String: Int] = [:]
    private var thread: Thread?

    init(supervisors: [Int32], faults: [Fault], intervalSeconds: Double, durationSeconds: Double) {
        self.supervisors = supervisors
        self.faults = faults
        self.intervalSeconds = intervalSeconds
        self.durationSeconds = durationSeconds
    }

    static func parse(_ list: String) throws(UsageError) -> [Fault] {
        var faults: [Fault] = []
        for name in list.split(separator: ",") {
            guard let fault = Fault(rawValue: String(name)) else {
                throw UsageError(message: "invalid fault '\(name)' in --faults: use kill-worker, hup or restart-redis")
            }
            faults.append(fault)
        }
        return faults
    }

    var counts: [String: Int] { lock.withLock { applied } }

    func start() {
        guard !supervisors.isEmpty, !faults.isEmpty else { return }
        let started = Date()
        let worker = Thread { [self] in
            var turn = 0
            while true {
                Thread.sleep(forTimeInterval: intervalSeconds)
                // Faults stop a little before publishing does, so the last one settles.
                let isDue = Date().timeIntervalSince(started) < durationSeconds - min(2, intervalSeconds / 2)
                guard lock.withLock({ isRunning }), isDue else { return }
                let fault = faults[turn % faults.count]
                let supervisor = supervisors[turn % supervisors.count]
                inject(fault, into: supervisor)
                turn += 1
            }
        }
        thread = worker
        worker.start()
    }

    func stop() {
        lock.withLock { isRunning = false }
    }

    private func inject(_ fault: Fault, into supervisor: Int32) {
        let target: Int32?
        let signal: Int32
        switch fault {
        case .killWorker:
            target = Self.children(of: supervisor, named: " worker ").randomElement()
            signal = SIGKILL
        case .hup:
            target = supervisor
            signal = SIGHUP
        case .restartRedis:
            // Only the supervisor that runs the private Redis has one to restart.
            target = supervisors.lazy.compactMap { Self.children(of: $0, named: "redis-server").first }.first
            signal = SIGTERM
        }
        guard let target else {
            FileHandle.standardError.write(Data("check: no process for \(fault.rawValue) under \(supervisor)\n".utf8))
            return
        }
        kill(target, signal)
        lock.withLock { applied[fault.rawValue, default: 0] += 1 }
        FileHandle.standardError.write(Data("check: fault=\(fault.rawValue) pid=\(target)\n".utf8))
    }

    /// The direct children of `pid` whose command line contains `name`.
    static func children(of pid: Int32, named name: String) -> [Int32] {
        let list = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return list.split(separator: " ").compactMap { Int32($0) }.filter { child in
            let raw = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(child)/cmdline"))) ?? Data()
            let command = String(decoding: raw.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
            return command.contains(name)
        }
    }
}
