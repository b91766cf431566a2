import DwellCore
import DwellEventLoop
import DwellHTTP
import DwellRedis
import Foundation

/// `GET /api/stats` and `GET /metrics`, both built from the registry in Redis so
/// that every worker of every server answers with the same cluster-wide view.
extension Worker {
    static let defaultUsersPerPage = 100
    static let maxUsersPerPage = 1000

    /// The counters each heartbeat writes into the server's registry hash, as
    /// field/value pairs named after their Prometheus metric.
    func metricFields() -> [String] {
        var fields: [String] = []
        func add(_ name: String, _ value: CustomStringConvertible) {
            fields += [name, String(describing: value)]
        }

        for outcome in PollOutcome.allCases {
            add("m:polls_answered:\(outcome.rawValue)", counters.pollsAnswered[outcome] ?? 0)
        }
        add("m:polls_rejected_over_limit", counters.pollsRejectedOverLimit)
        add("m:messages_published", counters.messagesPublished)
        add("m:deliveries", counters.deliveries)
        add("m:redis_reconnects", commands.reconnectCount + subscriber.reconnectCount)
        for (status, count) in server?.responsesByStatus ?? [:] {
            add("m:http_responses:\(status)", count)
        }
        for (index, bound) in LatencyHistogram.boundsMilliseconds.enumerated() {
            add("m:latency_bucket:\(bound)", deliveryLatency.cumulativeCounts[index])
        }
        add("m:latency_bucket:+Inf", deliveryLatency.count)
        add("m:latency_sum", deliveryLatency.sumMilliseconds)
        return fields
    }

    func respondWithStats(_ request: HTTPRequest, on connection: HTTPConnection) throws(RequestError) {
        let query = try QueryString(request.query)
        let cursor = query.value("cursor") ?? "0"
        guard Cursor.parse(cursor) != nil else {
            throw .badRequest("invalid cursor '\(cursor)': pass the nextCursor of the previous page, or 0")
        }
        var count = Self.defaultUsersPerPage
        if let text = query.value("count") {
            guard let value = Int(text), (1...Self.maxUsersPerPage).contains(value) else {
                throw .badRequest("invalid count '\(text)': use a whole number from 1 to \(Self.maxUsersPerPage)")
            }
            count = value
        }

        readClusterView(usersCursor: cursor, usersPerPage: count, on: connection) { [unowned self] view in
            respond(to: connection, status: 200, json: view.statsJSON())
        }
    }

    func respondWithMetrics(on connection: HTTPConnection) {
        readClusterView(usersCursor: "0", usersPerPage: 1, on: connection) { view in
            connection.respond(
                HTTPResponse(
                    status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                    body: SharedBytes(view.prometheusText())))
        }
    }

    private func readClusterView(
        usersCursor: String, usersPerPage: Int, on connection: HTTPConnection,
        completion: @escaping (ClusterView) -> Void
    ) {
        guard commands.isConnected else {
            respond(to: connection, error: RequestError.unavailable("Redis is unreachable; retry shortly"))
            return
        }
        commands.evaluate(
            RegistryScripts.clusterView, keys: bytes([RedisKeys.servers, RedisKeys.users]),
            arguments: bytes([usersCursor, String(usersPerPage)])
        ) { [unowned self] result in
            guard case .success(let value) = result, let view = ClusterView(value) else {
                Log.warning("stats.read_failed", ["result": result])
                respond(to: connection, error: RequestError.unavailable("Redis did not respond; retry shortly"))
                return
            }
            completion(view)
        }
    }
}

/// The live servers and one page of users, as the cluster view script returns them.
struct ClusterView {
    struct User {
        let id: String
        let polls: Int64
        let servers: [String]
    }

    let now: UInt64
    let servers: [[String: String]]
    let nextCursor: String
    let users: [User]

    init?(_ value: RedisValue) {
        guard case .array(let parts) = value, parts.count == 4, case .integer(let now) = parts[0],
            case .array(let serverRows) = parts[1], let nextCursor = parts[2].string,
            case .array(let userRows) = parts[3]
        else { return nil }

        self.now = UInt64(max(0, now))
        self.nextCursor = nextCursor
        servers = serverRows.map { row in
            var fields: [String: String] = [:]
            let items = row.array ?? []
            for index in stride(from: 0, to: items.count - 1, by: 2) {
                if let key = items[index].string, let value = items[index + 1].string {
                    fields[key] = value
                }
            }
            return fields
        }
        users = userRows.compactMap { row in
            guard let items = row.array, items.count >= 2, let id = items[0].string,
                case .integer(let polls) = items[1]
            else { return nil }
            return User(id: id, polls: polls, servers: items.dropFirst(2).compactMap(\.string))
        }
    }

    func statsJSON() -> String {
        var totalHeld = 0
        let serverObjects = servers.sorted { ($0["id"] ?? "") < ($1["id"] ?? "") }.map { fields in
            let held = Int(fields["heldPolls"] ?? "") ?? 0
            totalHeld += held
            let beat = UInt64(fields["heartbeatAt"] ?? "") ?? now
            let age = now > beat ? now - beat : 0
            return "{\"id\":\(JSONText.string(fields["id"] ?? "")),\"host\":\(JSONText.string(fields["host"] ?? ""))"
                + ",\"port\":\(Int(fields["port"] ?? "") ?? 0),\"pid\":\(Int(fields["pid"] ?? "") ?? 0)"
                + ",\"slot\":\(Int(fields["slot"] ?? "") ?? 0),\"heldPolls\":\(held)"
                + ",\"heartbeatAgeMs\":\(age),\"startedAt\":\(Int(fields["startedAt"] ?? "") ?? 0)}"
        }
        let userObjects = users.map { user in
            "{\"id\":\(JSONText.string(user.id)),\"polls\":\(user.polls),\"servers\":["
                + user.servers.map(JSONText.string).joined(separator: ",") + "]}"
        }
        return "{\"servers\":[\(serverObjects.joined(separator: ","))],\"totalHeldPolls\":\(totalHeld)"
            + ",\"users\":[\(userObjects.joined(separator: ","))],\"nextCursor\":\(JSONText.string(nextCursor))}"
    }

    /// Prometheus text format, one series per live server (labelled by server id
    /// and slot), from the counters of each server's last heartbeat.
    func prometheusText() -> String {
        var families: [String: (help: String, type: String, lines: [String])] = [:]
        func add(_ name: String, _ help: String, _ type: String, _ line: String) {
            families[name, default: (help, type, [])].lines.append(line)
        }

        for fields in servers {
            let labels = "server=\(quote(fields["id"] ?? "")),slot=\(quote(fields["slot"] ?? ""))"
            add(
                "dwell_held_polls", "Polls held now.", "gauge",
                "dwell_held_polls{\(labels)} \(fields["heldPolls"] ?? "0")")
            add(
                "dwell_heartbeat_age_seconds", "Seconds since the server's last heartbeat.", "gauge",
                "dwell_heartbeat_age_seconds{\(labels)} \(heartbeatAge(fields))")
            for (key, value) in fields.sorted(by: { $0.key < $1.key }) where key.hasPrefix("m:") {
                let parts = key.dropFirst(2).split(separator: ":", maxSplits: 1).map(String.init)
                switch parts[0] {
                case "polls_answered":
                    add(
                        "dwell_polls_answered_total", "Polls answered, by reason.", "counter",
                        "dwell_polls_answered_total{\(labels),reason=\(quote(parts[1]))} \(value)")
                case "http_responses":
                    add(
                        "dwell_http_responses_total", "HTTP responses written, by status code.", "counter",
                        "dwell_http_responses_total{\(labels),status=\(quote(parts[1]))} \(value)")
                case "latency_bucket", "latency_sum":
                    continue
                default:
                    let name = "dwell_\(parts[0])_total"
                    add(name, Self.help[parts[0]] ?? parts[0], "counter", "\(name){\(labels)} \(value)")
                }
            }
        }

        for fields in servers {
            let labels = "server=\(quote(fields["id"] ?? "")),slot=\(quote(fields["slot"] ?? ""))"
            let name = "dwell_delivery_latency_seconds"
            let help = "Time from publish to the response of a poll it woke, by the Redis and worker clocks."
            let bounds = LatencyHistogram.boundsMilliseconds.map(String.init) + ["+Inf"]
            for bound in bounds {
                let le = bound == "+Inf" ? bound : String(Double(bound)! / 1000)
                let value = fields["m:latency_bucket:\(bound)"] ?? "0"
                add(name, help, "histogram", "\(name)_bucket{\(labels),le=\(quote(le))} \(value)")
            }
            let sum = Double(fields["m:latency_sum"] ?? "0").map { $0 / 1000 } ?? 0
            add(name, help, "histogram", "\(name)_sum{\(labels)} \(sum)")
            add(name, help, "histogram", "\(name)_count{\(labels)} \(fields["m:latency_bucket:+Inf"] ?? "0")")
        }

        var text = ""
        for (name, family) in families.sorted(by: { $0.key < $1.key }) {
            text += "# HELP \(name) \(family.help)\n# TYPE \(name) \(family.type)\n"
            text += family.lines.joined(separator: "\n") + "\n"
        }
        return text
    }

    private static let help = [
        "messages_published": "Messages stored by publishes to this server.",
        "deliveries": "Polls answered by a message as it was published.",
        "redis_reconnects": "Reconnects of the server's Redis connections.",
        "polls_rejected_over_limit": "Polls rejected because their user held the maximum.",
    ]

    private func heartbeatAge(_ fields: [String: String]) -> Double {
        let beat = UInt64(fields["heartbeatAt"] ?? "") ?? now
        return Double(now > beat ? now - beat : 0) / 1000
    }

    private func quote(_ value: String) -> String {
        "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
