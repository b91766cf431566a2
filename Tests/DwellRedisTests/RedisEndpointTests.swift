import Testing

@testable import DwellRedis

@Suite
struct RedisEndpointTests {
    @Test(arguments: [
        ("redis://localhost", RedisEndpoint(address: .tcp(host: "localhost", port: 6379), database: 0)),
        ("redis://127.0.0.1:6380", RedisEndpoint(address: .tcp(host: "127.0.0.1", port: 6380), database: 0)),
        ("redis://cache.lan:7000/3", RedisEndpoint(address: .tcp(host: "cache.lan", port: 7000), database: 3)),
        ("REDIS://cache_1/", RedisEndpoint(address: .tcp(host: "cache_1", port: 6379), database: 0)),
        ("redis://[::1]:6379/2", RedisEndpoint(address: .tcp(host: "::1", port: 6379), database: 2)),
        ("redis://[::1]", RedisEndpoint(address: .tcp(host: "::1", port: 6379), database: 0)),
        ("unix:///run/redis.sock", RedisEndpoint(address: .unix(path: "/run/redis.sock"), database: 0)),
        ("unix:///tmp/r.sock?db=5", RedisEndpoint(address: .unix(path: "/tmp/r.sock"), database: 5)),
        ("unix:///tmp/with%20space.sock", RedisEndpoint(address: .unix(path: "/tmp/with space.sock"), database: 0)),
    ])
    func validURLParses(url: String, expected: RedisEndpoint) throws {
        #expect(try RedisEndpoint(url: url) == expected)
    }

    @Test(arguments: [
        ("", "the URL is empty"),
        ("localhost:6379", "\"//\" must follow"),
        ("localhost", "the scheme is missing"),
        ("http://localhost", "the scheme \"http\" is not supported"),
        ("rediss://localhost", "TLS (rediss://) is not supported"),
        ("redis://", "the host is missing"),
        ("redis://:6379", "the host is missing"),
        ("redis://host:", "the port \"\" is not a number"),
        ("redis://host:0", "the port \"0\" is not a number from 1 to 65535"),
        ("redis://host:65536", "the port \"65536\""),
        ("redis://host:12ab", "the port \"12ab\""),
        ("redis://host/-1", "the database \"-1\""),
        ("redis://host/1/2", "the database \"1/2\""),
        ("redis://host/db", "the database \"db\""),
        ("redis://host?db=1", "query parameters are not supported"),
        ("redis://host#x", "a fragment"),
        ("redis://ho st", "whitespace"),
        ("redis://ho$t", "the host \"ho$t\" may contain only"),
        ("redis://::1:6379", "put an IPv6 address in brackets"),
        ("redis://[::1", "no closing \"]\""),
        ("redis://[host]:1", "\"host\" is not an IPv6 address"),
        ("unix://host/run/redis.sock", "a unix:// URL has an empty host"),
        ("unix:///", "the socket path is missing"),
        ("unix:///tmp/r.sock?db=x", "the database \"x\""),
        ("unix:///tmp/r.sock?timeout=1", "the query parameter \"timeout=1\" is not supported"),
        ("unix:///tmp/bad%zz", "invalid percent escape"),
    ])
    func invalidURLNamesProblem(url: String, problem: String) {
        do {
            let endpoint = try RedisEndpoint(url: url)
            Issue.record("\(url) parsed as \(endpoint)")
        } catch let error as RedisEndpointError {
            #expect(error.message.contains(problem), "message: \(error.message)")
            #expect(error.message.contains("redis://host[:port][/db] or unix:///absolute/path[?db=N]"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func userinfoRejectedWithoutEcho() {
        for url in ["redis://:s3cret@localhost:6379/0", "redis://admin:s3cret@localhost", "redis//user:s3cret@h"] {
            do {
                _ = try RedisEndpoint(url: url)
                Issue.record("\(url) was accepted")
            } catch let error as RedisEndpointError {
                #expect(!error.message.contains("s3cret"), "message: \(error.message)")
                #expect(error.message.contains("***@"), "message: \(error.message)")
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
    }

    @Test func longUnixPathRejected() throws {
        let path = "/" + String(repeating: "d", count: RedisEndpoint.maxUnixPathLength)
        #expect(throws: RedisEndpointError.self) { try RedisEndpoint(url: "unix://\(path)") }
        let longest = String(path.dropLast())
        #expect(try RedisEndpoint(url: "unix://\(longest)").address == .unix(path: longest))
    }

    @Test(arguments: [
        "redis://127.0.0.1:6379", "redis://cache:7000/4", "redis://[::1]:6379/1",
        "unix:///run/redis.sock", "unix:///tmp/r.sock?db=3",
    ])
    func descriptionRoundTrips(url: String) throws {
        let endpoint = try RedisEndpoint(url: url)
        #expect(endpoint.description == url)
        #expect(try RedisEndpoint(url: endpoint.description) == endpoint)
    }
}

@Suite
struct RedisBackoffTests {
    @Test func delaysDoubleUpToCap() {
        let backoff = RedisBackoff(baseMilliseconds: 100, maxMilliseconds: 5_000)
        let delays = (1...9).map { backoff.delay(forAttempt: $0) }
        #expect(delays == [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000])
        #expect(backoff.delay(forAttempt: 10_000) == 5_000)
    }

    @Test func jitterOnlyShortensDelay() {
        let backoff = RedisBackoff(baseMilliseconds: 100, maxMilliseconds: 5_000)
        for attempt in 1...10 {
            let full = backoff.delay(forAttempt: attempt)
            let jittered = backoff.jitteredDelay(forAttempt: attempt)
            #expect(jittered <= full)
            #expect(jittered >= full - full / 5)
        }
    }

    @Test func zeroSettingsAreClamped() {
        let backoff = RedisBackoff(baseMilliseconds: 0, maxMilliseconds: 0)
        #expect(backoff.delay(forAttempt: 1) == 1)
        #expect(backoff.delay(forAttempt: 5) == 1)
    }
}

@Suite
struct RedisValueTests {
    @Test func accessorsMatchCase() {
        #expect(RedisValue.bulk(Array("hi".utf8)).string == "hi")
        #expect(RedisValue.bulk([0xFF, 0xFE]).string == nil)
        #expect(RedisValue.bulk([0xFF]).bytes == [0xFF])
        #expect(RedisValue.status("OK").string == "OK")
        #expect(RedisValue.status("OK").bytes == Array("OK".utf8))
        #expect(RedisValue.integer(7).integer == 7)
        #expect(RedisValue.bulk(Array("7".utf8)).integer == nil)
        #expect(RedisValue.array([.null]).array == [.null])
        #expect(RedisValue.null.isNull)
        #expect(RedisValue.error("ERR x").string == nil)
    }
}
