import DwellCore
import DwellEventLoop
import DwellHTTP
import DwellRedis
import Glibc

/// The server registry and user mappings: heartbeats, the per-user maximum,
/// grace periods and the removal of dead servers.
extension Worker {
    /// The caller's user id. Every identity decision goes through here, so that
    /// a verified token can replace the development `userId` parameter in one place.
    ///
    /// NOTE: the `userId` query parameter is not verified; anyone can claim any user.
    func authenticatedUserID(_ request: HTTPRequest, parameters: PollParameters) -> String? {
        parameters.userID
    }

    /// Rejects a poll on another user's channel.
    func authorize(_ parameters: PollParameters, userID: String?) throws(RequestError) {
        for channel in parameters.channels where Self.isUserChannel(channel) {
            guard let userID, channel == Identifiers.userChannel(userID) else {
                throw .forbidden("channel '\(channel)' belongs to another user; poll it with its own userId")
            }
        }
    }

    /// Counts the poll against its user's maximum across the cluster, then holds it.
    func admit(_ poll: HeldPoll, userID: String) {
        let keys = [
            RedisKeys.user(userID), RedisKeys.serverUsers(serverID), RedisKeys.servers, RedisKeys.users,
        ]
        let arguments = [serverID, String(configuration.maxPollsPerUser), userID]
        commands.evaluate(RegistryScripts.acquireUser, keys: bytes(keys), arguments: bytes(arguments)) {
            [unowned self] result in
            guard case .success(.array(let reply)) = result, reply.count == 2,
                case .integer(let admitted) = reply[0], case .integer(let total) = reply[1]
            else {
                Log.warning("user.admit_failed", ["user": userID, "result": result])
                if !poll.isReleased {
                    answerWithError(poll, status: 503, message: "Redis did not respond; poll again shortly")
                }
                return
            }
            guard admitted == 1 else {
                rejectOverLimit(poll, userID: userID, total: Int(total))
                return
            }

            userPolls[userID, default: 0] += 1
            userGraceSince.removeValue(forKey: userID)
            guard !poll.isReleased else {
                // The client left while Redis counted it: give the slot back.
                releaseUserSlot(userID)
                return
            }
            poll.holdsUserSlot = true
            hold(poll)
        }
    }

    private func rejectOverLimit(_ poll: HeldPoll, userID: String, total: Int) {
        guard !poll.isReleased else { return }
        let connection = poll.connection
        release(poll, outcome: .error)
        counters.pollsRejectedOverLimit += 1
        let message =
            "user '\(userID)' already holds \(total) polls, the maximum is \(configuration.maxPollsPerUser);"
            + " close another poll or retry later"
        respond(
            to: connection, error: RequestError.tooManyRequests(message, retryAfterSeconds: 1))
    }

    /// Gives one poll of `userID` back; the mapping itself stays for the grace period.
    func releaseUserSlot(_ userID: String) {
        let left = (userPolls[userID] ?? 1) - 1
        if left > 0 {
            userPolls[userID] = left
        } else {
            userPolls.removeValue(forKey: userID)
            userGraceSince[userID] = loop.nowMilliseconds
        }
        commands.evaluate(
            RegistryScripts.releaseUser, keys: bytes([RedisKeys.user(userID)]), arguments: bytes([serverID])
        ) { _ in }
    }

    /// Removes the mappings of users who left this server longer than the grace period ago.
    func expireUserMappings(now: UInt64) {
        let expired = userGraceSince.filter { now - $0.value >= configuration.userGraceMilliseconds }.map(\.key)
        for userID in expired {
            userGraceSince.removeValue(forKey: userID)
            guard userPolls[userID] == nil else { continue }
            let keys = [RedisKeys.user(userID), RedisKeys.serverUsers(serverID), RedisKeys.users]
            commands.evaluate(RegistryScripts.expireUser, keys: bytes(keys), arguments: bytes([serverID, userID])) {
                _ in
            }
        }
    }

    /// Refreshes this server's registration, with its counters for `/metrics`.
    func sendHeartbeat() {
        guard commands.isConnected, !isDraining else { return }

        var fields = [
            "id", serverID, "host", configuration.advertisedHost, "pid", String(getpid()),
            "port", String(configuration.port), "slot", String(configuration.slot),
            "startedAt", String(startedAtWallMilliseconds), "heldPolls", String(polls.count),
        ]
        fields += metricFields()
        let keys = [RedisKeys.servers, RedisKeys.server(serverID), RedisKeys.epoch]
        commands.evaluate(
            RegistryScripts.heartbeat, keys: bytes(keys),
            arguments: bytes([String(configuration.heartbeatIntervalMilliseconds)] + fields)
        ) { [unowned self] result in
            guard case .success(.array(let reply)) = result, reply.count == 3, let epoch = reply[2].string else {
                return
            }
            if reply[0] == .integer(1), hasRegistered {
                // Redis lost this server (restart, or presumed dead): targeted
                // publishes skipped it meanwhile, so restore its users, then reread.
                Log.warning("registry.reregistered", ["users": userPolls.count])
                restoreUserMappings()
                rereadBacklogs { Self.isUserChannel($0) }
            }
            hasRegistered = true
            epochObserved(epoch)
        }
    }

    /// Rereads the backlog of every held poll with a channel matching `isAffected`.
    /// The read script answers each one with what it missed, or with a reset.
    func rereadBacklogs(where isAffected: (String) -> Bool) {
        for poll in polls.allElements where poll.state == .held && poll.channels.contains(where: isAffected) {
            readBacklog(poll)
        }
    }

    /// Compares the data set's epoch, as a heartbeat, read or publish reported it,
    /// with the one this worker last saw. A change (or a lost counter, reported as
    /// "") means held polls of the old epoch wait on ids that will not come, so
    /// every held poll rereads, and those of the old epoch are answered with a reset.
    func epochObserved(_ epoch: String) {
        defer { knownEpoch = epoch }
        guard let known = knownEpoch, known != epoch else { return }
        Log.warning("store.epoch_changed", ["previous": known, "current": epoch.isEmpty ? "none" : epoch])
        rereadBacklogs { _ in true }
    }

    private func restoreUserMappings() {
        for (userID, count) in userPolls {
            commands.evaluate(
                RegistryScripts.restoreUser, keys: bytes([RedisKeys.user(userID)]),
                arguments: bytes([serverID, String(count), userID])
            ) { _ in }
        }
    }

    /// Removes a bounded batch of dead servers and their user mappings.
    func reapDeadServers() {
        guard commands.isConnected else { return }
        commands.evaluate(
            RegistryScripts.reapDeadServers, keys: bytes([RedisKeys.servers, RedisKeys.users]),
            arguments: bytes(["10", "500"])
        ) { result in
            if case .success(.array(let reply)) = result, reply.count == 2,
                case .integer(let servers) = reply[0], case .integer(let users) = reply[1], servers + users > 0
            {
                Log.info("registry.reaped", ["servers": servers, "user_mappings": users])
            }
        }
    }

    /// Removes this server from the registry and every user mapping; part of the drain.
    func deregister() {
        guard commands.isConnected else { return }
        let keys = [
            RedisKeys.servers, RedisKeys.server(serverID), RedisKeys.serverUsers(serverID), RedisKeys.users,
        ]
        commands.evaluate(RegistryScripts.deregister, keys: bytes(keys), arguments: bytes([serverID])) { _ in
            Log.info("registry.deregistered", [:])
        }
    }

    /// Starts the heartbeat timer and the reaper, which runs twice per interval so
    /// that a dead server is gone within three intervals of its last heartbeat.
    func startRegistryTimers() {
        let interval = configuration.heartbeatIntervalMilliseconds
        let heartbeat = LoopTimer(loop: loop) { [unowned self] in sendHeartbeat() }
        heartbeat.start(afterMilliseconds: interval, repeatMilliseconds: interval)
        let reaper = LoopTimer(loop: loop) { [unowned self] in reapDeadServers() }
        reaper.start(afterMilliseconds: interval / 2, repeatMilliseconds: max(interval / 2, 1))
        registryTimers = [heartbeat, reaper]
    }

    func bytes(_ strings: [String]) -> [[UInt8]] {
        strings.map { Array($0.utf8) }
    }
}
