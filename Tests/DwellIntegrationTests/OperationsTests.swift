import DwellClient
import Foundation
import Testing

@Suite("Rolling restart and proxy", .serialized)
struct OperationsTests {
    @Test("SIGHUP under a polling loop fails no request")
    func rollingRestart() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis, workers: 4, holdTimeout: 1)
        let stop = Atomic()
        let loop = Background { () -> (requests: Int, failures: [String]) in
            var failures: [String] = []
            var requests = 0
            let poller = try dwell.client(timeout: 10)
            var cursor = try poller.publish(channel: "roll", dataJSON: "0")
            while !stop.isSet {
                do {
                    // A fresh connection per publish: a POST is never retried on a
                    // kept-alive connection that the server closed meanwhile.
                    _ = try dwell.client(timeout: 10).publish(channel: "roll", dataJSON: String(requests))
                    cursor = try poller.poll(channels: ["roll"], cursor: cursor).lastEventID
                    requests += 2
                } catch {
                    failures.append("\(error)")
                }
            }
            return (requests, failures)
        }

        Thread.sleep(forTimeInterval: 0.5)
        dwell.child.signal(SIGHUP)
        try waitUntil(30, "the rolling restart to finish") {
            dwell.child.log.contains("event=supervisor.rolling_restart_done")
        }
        Thread.sleep(forTimeInterval: 0.5)
        stop.set()

        let (requests, failures) = try loop.value(timeout: 30)
        #expect(requests > 10)
        #expect(failures.isEmpty, "failed requests: \(failures.prefix(5))")
        let retired = dwell.child.log.components(separatedBy: "event=supervisor.worker_retired").count - 1
        #expect(retired == 4)
    }

    @Test("nginx passes a held poll through at once")
    func nginxInFront() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis, holdTimeout: 20)
        let proxy = try NginxUnderTest(upstreamPort: dwell.port)
        let client = try DwellClient(url: "http://127.0.0.1:\(proxy.port)", timeoutSeconds: 30)
        let cursor = try client.publish(channel: "edge", dataJSON: "0")

        let poll = Background {
            try DwellClient(url: "http://127.0.0.1:\(proxy.port)").poll(channels: ["edge"], cursor: cursor)
        }
        try waitUntil(10, "the poll to be held behind nginx") { try dwell.heldPolls() == 1 }
        let id = try client.publish(channel: "edge", dataJSON: #"{"small":true}"#)

        // Well under the 20 s hold: a buffering proxy would hold the answer back.
        let result = try poll.value(timeout: 5)
        #expect(result.lastEventID == id)
        #expect(!result.isTimeout)
    }
}

/// A flag shared between a test and its background loop.
final class Atomic: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// Debian's nginx with the repository's deploy/nginx-dwell.conf, ports rewritten.
final class NginxUnderTest {
    let port: Int
    let child: ChildUnderTest
    let directory: String

    init(upstreamPort: Int) throws {
        port = try freePort()
        directory = NSTemporaryDirectory() + "dwell-nginx-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)

        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let site = try String(contentsOf: root.appendingPathComponent("deploy/nginx-dwell.conf"), encoding: .utf8)
            .replacingOccurrences(of: "listen 80;", with: "listen 127.0.0.1:\(port);")
            .replacingOccurrences(of: "server 127.0.0.1:8080;", with: "server 127.0.0.1:\(upstreamPort);")
        try site.write(toFile: directory + "/site.conf", atomically: true, encoding: .utf8)
        let main = """
            worker_processes 1;
            daemon off;
            pid \(directory)/nginx.pid;
            error_log \(directory)/error.log warn;
            events { worker_connections 1024; }
            http {
                access_log off;
                client_body_temp_path \(directory)/body;
                proxy_temp_path \(directory)/proxy;
                include \(directory)/site.conf;
            }
            """
        try main.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)

        child = try ChildUnderTest(
            name: "nginx-\(port)", executable: try findProgram("nginx"),
            arguments: ["-p", directory, "-c", directory + "/nginx.conf"])
        try waitUntil(10, "nginx on port \(port)") {
            _ = try HTTPClientConnection(host: "127.0.0.1", port: port, timeoutSeconds: 1)
            return true
        }
    }

    deinit {
        child.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
