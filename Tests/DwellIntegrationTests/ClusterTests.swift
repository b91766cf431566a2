import DwellClient
import Foundation
import Testing

/// Two `dwell serve` supervisors on two ports, one Redis: one cluster.
struct Cluster {
    let redis: RedisUnderTest
    let a: DwellUnderTest
    let b: DwellUnderTest

    init(heartbeat: Double = 0.5, maxPollsPerUser: Int = 4) throws {
        redis = try RedisUnderTest()
        let extra = ["--heartbeat-interval", String(heartbeat), "--max-polls-per-user", String(maxPollsPerUser)]
        a = try DwellUnderTest(redis: redis, workers: 1, extra: extra)
        b = try DwellUnderTest(redis: redis, workers: 1, extra: extra)
    }

    func stats(_ dwell: DwellUnderTest) throws -> [String: Any] {
        try jsonObject(try dwell.connection().request("GET", "/api/stats?count=1000"))
    }

    /// The user's poll count per server port, from the stats of `dwell`.
    func userPolls(_ user: String, via dwell: DwellUnderTest) throws -> Int {
        let users = try stats(dwell)["users"] as? [[String: Any]] ?? []
        return (users.first { $0["id"] as? String == user }?["polls"] as? NSNumber)?.intValue ?? 0
    }

    func serverPorts(via dwell: DwellUnderTest) throws -> [Int] {
        let servers = try stats(dwell)["servers"] as? [[String: Any]] ?? []
        return servers.compactMap { ($0["port"] as? NSNumber)?.intValue }.sorted()
    }
}

/// Holds a poll for `user` on `dwell` in the background.
func userPoll(_ dwell: DwellUnderTest, user: String, cursor: UInt64 = 0) -> Background<ClientResponse> {
    Background {
        try dwell.connection(timeout: 30).request("GET", "/api/poll?userId=\(user)&lastEventId=\(cursor)")
    }
}

func postToUser(_ dwell: DwellUnderTest, _ user: String, _ data: String) throws -> UInt64 {
    let response = try dwell.connection().request(
        "POST", "/api/users/\(user)/messages", body: Array("{\"data\":\(data)}".utf8))
    guard response.status == 200, let id = (try jsonObject(response)["messageId"] as? NSNumber)?.uint64Value else {
        throw HarnessError("targeted publish failed: \(response.status) \(response.bodyText)")
    }
    return id
}

@Suite("Cluster of two servers", .serialized)
struct ClusterTests {
    @Test("targeted message reaches only its user")
    func targetedDelivery() throws {
        let cluster = try Cluster()
        try waitUntil(10, "both servers registered") { try cluster.serverPorts(via: cluster.a).count == 2 }

        let alice = userPoll(cluster.a, user: "alice")
        let bob = userPoll(cluster.b, user: "bob")
        try waitUntil(10, "alice mapped on A and bob on B") {
            try cluster.a.heldPolls() == 1 && cluster.b.heldPolls() == 1
        }
        let id = try postToUser(cluster.b, "alice", #""for alice""#)

        let answer = try jsonObject(try alice.value())
        #expect((answer["lastEventId"] as? NSNumber)?.uint64Value == id)
        #expect(((answer["messages"] as? [[String: Any]])?.first?["channel"]) as? String == "user:alice")
        #expect(try cluster.b.heldPolls() == 1, "bob's poll on B must not wake")

        _ = try postToUser(cluster.a, "bob", "1")
        #expect(try bob.value().status == 200)
    }

    @Test("user on both servers receives on both")
    func twoTabs() throws {
        let cluster = try Cluster()
        let onA = userPoll(cluster.a, user: "carol")
        let onB = userPoll(cluster.b, user: "carol")
        try waitUntil(10, "carol held on both servers") { try cluster.userPolls("carol", via: cluster.a) == 2 }

        let id = try postToUser(cluster.a, "carol", #""both tabs""#)
        #expect((try jsonObject(try onA.value())["lastEventId"] as? NSNumber)?.uint64Value == id)
        #expect((try jsonObject(try onB.value())["lastEventId"] as? NSNumber)?.uint64Value == id)
    }

    @Test("message for offline user replayed on next poll")
    func offlineReplay() throws {
        let cluster = try Cluster()
        // "%64ave" is "dave" percent-encoded, as a client library may send it.
        let id = try postToUser(cluster.a, "%64ave", #""while away""#)
        let response = try cluster.b.connection().request("GET", "/api/poll?userId=dave&lastEventId=0")
        #expect((try jsonObject(response)["lastEventId"] as? NSNumber)?.uint64Value == id)
    }

    @Test("per-user limit holds across servers")
    func perUserLimit() throws {
        let cluster = try Cluster(maxPollsPerUser: 3)
        let held = [
            userPoll(cluster.a, user: "erin"), userPoll(cluster.b, user: "erin"), userPoll(cluster.a, user: "erin"),
        ]
        try waitUntil(10, "three polls of erin") { try cluster.userPolls("erin", via: cluster.b) == 3 }

        let rejected = try cluster.b.connection().request("GET", "/api/poll?userId=erin&lastEventId=0")
        #expect(rejected.status == 429)
        #expect(rejected.header("retry-after") != nil)

        _ = try postToUser(cluster.a, "erin", "1")
        for poll in held {
            #expect(try poll.value().status == 200)
        }
    }

    @Test("another user's channel is forbidden")
    func foreignUserChannel() throws {
        let cluster = try Cluster()
        let response = try cluster.a.connection().request("GET", "/api/poll?channels=user:frank&userId=gina")
        #expect(response.status == 403)
    }

    @Test("killed server leaves registry and mappings")
    func deadServerReaped() throws {
        let cluster = try Cluster(heartbeat: 0.5)
        let poll = userPoll(cluster.a, user: "hank")
        try waitUntil(10, "hank mapped on A") { try cluster.userPolls("hank", via: cluster.b) == 1 }
        try waitUntil(10, "both servers registered") { try cluster.serverPorts(via: cluster.b).count == 2 }

        // SIGKILL the whole of A: the supervisor first, so it restarts nothing.
        let workerPid = (try cluster.a.healthObject()["pid"] as? NSNumber)?.int32Value ?? 0
        kill(cluster.a.child.pid, SIGKILL)
        kill(workerPid, SIGKILL)
        _ = try? poll.value(timeout: 5)

        let killedAt = Date()
        try waitUntil(10, "A gone from the registry") { try cluster.serverPorts(via: cluster.b) == [cluster.b.port] }
        try waitUntil(10, "hank's mapping gone") { try cluster.userPolls("hank", via: cluster.b) == 0 }
        #expect(Date().timeIntervalSince(killedAt) < 3 * 0.5 + 1.0, "reaping took longer than three heartbeats")

        let survivor = userPoll(cluster.b, user: "hank")
        try waitUntil(10, "hank held on B") { try cluster.b.heldPolls() == 1 }
        _ = try postToUser(cluster.b, "hank", "2")
        #expect(try survivor.value().status == 200)
    }

    @Test("paused server catches up after rejoining")
    func pausedServerRejoins() throws {
        let cluster = try Cluster(heartbeat: 0.5)
        let poll = userPoll(cluster.b, user: "jo")
        try waitUntil(10, "jo mapped on B") { try cluster.userPolls("jo", via: cluster.a) == 1 }

        // Freeze all of B past its heartbeat deadline, so Redis counts it dead.
        let worker = (try cluster.b.healthObject()["pid"] as? NSNumber)?.int32Value ?? 0
        kill(cluster.b.child.pid, SIGSTOP)
        kill(worker, SIGSTOP)
        defer {
            kill(worker, SIGCONT)
            kill(cluster.b.child.pid, SIGCONT)
        }
        try waitUntil(10, "B gone from the registry") { try cluster.serverPorts(via: cluster.a) == [cluster.a.port] }
        let missedByB = try postToUser(cluster.a, "jo", #""while B was frozen""#)
        kill(worker, SIGCONT)
        kill(cluster.b.child.pid, SIGCONT)

        // Rejoining, B rereads the backlog of its held user polls.
        let answer = try jsonObject(try poll.value(timeout: 15))
        let ids = (answer["messages"] as? [[String: Any]] ?? []).compactMap { ($0["id"] as? NSNumber)?.uint64Value }
        #expect(ids.first == missedByB)
    }

    @Test("stats and metrics reflect the cluster")
    func statsAndMetrics() throws {
        let cluster = try Cluster()
        let poll = userPoll(cluster.a, user: "ivy")
        try waitUntil(10, "A's heartbeat to report one held poll") {
            let servers = try cluster.stats(cluster.b)["servers"] as? [[String: Any]] ?? []
            return servers.contains {
                ($0["port"] as? NSNumber)?.intValue == cluster.a.port && ($0["heldPolls"] as? NSNumber)?.intValue == 1
            }
        }
        let stats = try cluster.stats(cluster.b)
        #expect((stats["totalHeldPolls"] as? NSNumber)?.intValue == 1)
        for server in stats["servers"] as? [[String: Any]] ?? [] {
            #expect(((server["heartbeatAgeMs"] as? NSNumber)?.intValue ?? 99_999) < 5_000)
        }

        _ = try postToUser(cluster.b, "ivy", "1")
        #expect(try poll.value().status == 200)
        try waitUntil(10, "the delivery in the metrics") {
            let metrics = try cluster.b.connection().request("GET", "/metrics").bodyText
            return metrics.contains("dwell_deliveries_total{server=")
                && metrics.range(
                    of: #"dwell_deliveries_total\{[^}]*\} 1"#, options: .regularExpression) != nil
        }
        let metrics = try cluster.a.connection().request("GET", "/metrics")
        #expect(metrics.header("content-type")?.hasPrefix("text/plain") == true)
        for name in [
            "dwell_held_polls", "dwell_polls_answered_total", "dwell_messages_published_total",
            "dwell_redis_reconnects_total", "dwell_http_responses_total", "dwell_delivery_latency_seconds_bucket",
        ] {
            #expect(metrics.bodyText.contains(name), "metrics lack \(name)")
        }
    }
}
