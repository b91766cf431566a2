/// A Lua script that `RedisConnection.evaluate` runs with `EVAL` until Redis returns the
/// script's SHA-1, and with `EVALSHA` after that.
///
/// The SHA-1 comes from Redis, through a `SCRIPT LOAD` that the first `evaluate`
/// pipelines behind its `EVAL`, so no hash code is written here. Copies of a script
/// share what they learned. Use a script only on the loop thread.
public struct RedisScript {
    public let source: String
    let sourceBytes: [UInt8]
    let digest: ScriptDigest

    public init(source: String) {
        self.source = source
        sourceBytes = Array(source.utf8)
        digest = ScriptDigest()
    }

    /// The script's SHA-1 in lowercase hex as Redis reported it, or nil before the first
    /// `SCRIPT LOAD` reply.
    public var sha1: String? {
        digest.sha1.map { String(decoding: $0, as: UTF8.self) }
    }
}

/// The SHA-1 of one script, shared by the copies of a `RedisScript`.
final class ScriptDigest {
    var sha1: [UInt8]?
    var isLoading = false
}

extension RedisConnection {
    /// Runs `script` with the given keys and arguments. `completion` runs exactly once,
    /// as for `send`.
    ///
    /// With a known SHA-1, this sends `EVALSHA`. When Redis replies `NOSCRIPT` because
    /// its script cache was emptied (a restart, `SCRIPT FLUSH`, a failover), the script
    /// did not run, so the same call is sent again as `EVAL`. That retry costs one more
    /// round trip, and a `SCRIPT LOAD` goes with it so that later calls find the script.
    public func evaluate(
        _ script: RedisScript, keys: [[UInt8]], arguments: [[UInt8]],
        completion: @escaping (Result<RedisValue, RedisCommandError>) -> Void
    ) {
        var tail: [[UInt8]] = [Array(String(keys.count).utf8)]
        tail.reserveCapacity(1 + keys.count + arguments.count)
        tail.append(contentsOf: keys)
        tail.append(contentsOf: arguments)

        guard let sha1 = script.digest.sha1 else {
            send([Array("EVAL".utf8), script.sourceBytes] + tail, completion: completion)
            loadDigest(of: script)
            return
        }

        send([Array("EVALSHA".utf8), sha1] + tail) { [weak self] result in
            guard case .failure(.server(let message)) = result, message.hasPrefix("NOSCRIPT") else {
                completion(result)
                return
            }
            guard let self else {
                completion(.failure(.notConnected))
                return
            }
            self.send([Array("EVAL".utf8), script.sourceBytes] + tail, completion: completion)
            self.loadDigest(of: script)
        }
    }

    /// Sends `SCRIPT LOAD` unless one is already on its way, and stores the SHA-1 that
    /// Redis returns.
    private func loadDigest(of script: RedisScript) {
        let digest = script.digest
        guard !digest.isLoading else { return }
        digest.isLoading = true

        send([Array("SCRIPT".utf8), Array("LOAD".utf8), script.sourceBytes]) { result in
            digest.isLoading = false
            if case .success(let value) = result, let sha1 = value.bytes, sha1.count == 40 {
                digest.sha1 = sha1
            }
        }
    }
}
