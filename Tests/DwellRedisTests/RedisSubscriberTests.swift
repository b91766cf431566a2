import DwellEventLoop
import Testing

@testable import DwellRedis

extension RedisLoopTests {
    @Suite
    struct RedisSubscriberTests {
        let loop = RedisLoopTests.loop
        var driver: LoopDriver { LoopDriver(loop: loop) }

        /// Records what a subscriber reports.
        final class Recorder {
            var messages: [(channel: [UInt8], payload: [UInt8])] = []
            var confirmations: [[UInt8]] = []
            var connectedCount = 0
            var disconnectReasons: [String] = []

            func attach(to subscriber: RedisSubscriber) {
                subscriber.onMessage = { [unowned self] in self.messages.append(($0, $1)) }
                subscriber.onSubscribed = { [unowned self] in self.confirmations.append($0) }
                subscriber.onConnected = { [unowned self] in self.connectedCount += 1 }
                subscriber.onDisconnected = { [unowned self] in self.disconnectReasons.append($0) }
            }

            func payloads(on channel: String) -> [String] {
                let matching = messages.filter { $0.channel == Array(channel.utf8) }
                return matching.map { String(decoding: $0.payload, as: UTF8.self) }
            }

            func confirmationCount(of channel: String) -> Int {
                confirmations.filter { $0 == Array(channel.utf8) }.count
            }
        }

        private func makeClients(
            _ server: RedisServerProcess
        ) -> (RedisSubscriber, RedisConnection, Recorder) {
            let endpoint = RedisEndpoint(address: .tcp(host: "127.0.0.1", port: server.port))
            let subscriber = RedisSubscriber(
                loop: loop, endpoint: endpoint, reconnectBaseMilliseconds: 20, reconnectMaxMilliseconds: 200)
            let publisher = RedisConnection(
                loop: loop, endpoint: endpoint, name: "commands",
                reconnectBaseMilliseconds: 20, reconnectMaxMilliseconds: 200)
            let recorder = Recorder()
            recorder.attach(to: subscriber)
            subscriber.start()
            publisher.start()
            return (subscriber, publisher, recorder)
        }

        private func shutDown(_ subscriber: RedisSubscriber, _ publisher: RedisConnection) {
            subscriber.stop()
            publisher.stop()
            driver.drain()
        }

        private func publish(_ publisher: RedisConnection, _ channel: String, _ payload: String) -> Int64? {
            driver.send(publisher, ["PUBLISH", channel, payload]).flatMap { try? $0.get().integer }
        }

        /// Subscribers that Redis counts for `channel`, from `PUBSUB NUMSUB`.
        private func redisSubscriberCount(_ publisher: RedisConnection, _ channel: [UInt8]) -> Int64? {
            let reply = driver.send(publisher, [Array(text: "PUBSUB"), Array(text: "NUMSUB"), channel])
            guard case .success(.array(let pair)) = reply, pair.count == 2 else { return nil }
            return pair[1].integer
        }

        @Test func subscriberReceivesMessages() throws {
            let server = try RedisServerProcess()
            let (subscriber, publisher, recorder) = makeClients(server)
            defer { shutDown(subscriber, publisher) }

            let binaryChannel: [UInt8] = [0x00, 0x0A, 0xFF, 0x20]
            subscriber.subscribe(Array(text: "news"))
            subscriber.subscribe(binaryChannel)
            subscriber.subscribe(Array(text: "news"))
            #expect(subscriber.subscribedCount == 2)
            #expect(!subscriber.isConfirmed(Array(text: "news")))

            #expect(driver.run { subscriber.confirmedCount == 2 })
            #expect(driver.run { publisher.isConnected })
            #expect(subscriber.isConfirmed(Array(text: "news")))
            #expect(subscriber.isConfirmed(binaryChannel))
            #expect(recorder.confirmationCount(of: "news") == 1)
            #expect(recorder.connectedCount == 1)

            #expect(publish(publisher, "news", "first") == 1)
            #expect(publish(publisher, "news", "second") == 1)
            let payload: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF]
            let published = driver.send(publisher, [Array(text: "PUBLISH"), binaryChannel, payload])
            #expect(published == .success(.integer(1)))

            #expect(driver.run { recorder.messages.count == 3 })
            #expect(recorder.payloads(on: "news") == ["first", "second"])
            #expect(recorder.messages.last?.channel == binaryChannel)
            #expect(recorder.messages.last?.payload == payload)
        }

        @Test func unsubscribeStopsDelivery() throws {
            let server = try RedisServerProcess()
            let (subscriber, publisher, recorder) = makeClients(server)
            defer { shutDown(subscriber, publisher) }

            subscriber.subscribe(Array(text: "a"))
            subscriber.subscribe(Array(text: "b"))
            #expect(driver.run { subscriber.confirmedCount == 2 })
            #expect(driver.run { publisher.isConnected })

            subscriber.unsubscribe(Array(text: "a"))
            #expect(subscriber.subscribedCount == 1)
            #expect(!subscriber.isConfirmed(Array(text: "a")))
            // Sent before the UNSUBSCRIBE reaches Redis, so Redis still delivers it.
            _ = publish(publisher, "a", "late")
            _ = publish(publisher, "b", "kept")
            #expect(driver.run { recorder.messages.count >= 1 })

            #expect(driver.run { redisSubscriberCount(publisher, Array(text: "a")) == 0 })
            #expect(publish(publisher, "a", "after") == 0)
            #expect(recorder.payloads(on: "a").isEmpty)
            #expect(recorder.payloads(on: "b") == ["kept"])
        }

        @Test func resubscribeAfterLastUnsubscribe() throws {
            let server = try RedisServerProcess()
            let (subscriber, publisher, recorder) = makeClients(server)
            defer { shutDown(subscriber, publisher) }
            let channel = Array(text: "solo")

            subscriber.subscribe(channel)
            #expect(driver.run { subscriber.isConfirmed(channel) })
            #expect(driver.run { publisher.isConnected })

            // With no channel left, hiredis leaves subscribed mode, and a new SUBSCRIBE
            // must enter it again.
            subscriber.unsubscribe(channel)
            #expect(driver.run { redisSubscriberCount(publisher, channel) == 0 })
            subscriber.subscribe(channel)
            #expect(driver.run { subscriber.isConfirmed(channel) })
            #expect(publish(publisher, "solo", "again") == 1)
            #expect(driver.run { recorder.payloads(on: "solo") == ["again"] })

            // Unsubscribe and subscribe in the same turn: the channel ends subscribed.
            subscriber.unsubscribe(channel)
            subscriber.subscribe(channel)
            subscriber.unsubscribe(channel)
            subscriber.subscribe(channel)
            #expect(driver.run { subscriber.isConfirmed(channel) })
            #expect(driver.run { redisSubscriberCount(publisher, channel) == 1 })
            #expect(publish(publisher, "solo", "still") == 1)
            #expect(driver.run { recorder.payloads(on: "solo") == ["again", "still"] })
            #expect(subscriber.isConnected)
            #expect(recorder.disconnectReasons.isEmpty)
        }

        @Test func subscriptionChurnConverges() throws {
            let server = try RedisServerProcess()
            let (subscriber, publisher, recorder) = makeClients(server)
            defer { shutDown(subscriber, publisher) }
            #expect(driver.run { subscriber.isConnected })
            #expect(driver.run { publisher.isConnected })

            let names = (0..<6).map { "churn\($0)" }
            var desired = Set<String>()
            var random = SplitMix64(seed: 42)
            for step in 0..<600 {
                let name = names[Int(random.next() % UInt64(names.count))]
                if random.next() % 2 == 0 {
                    subscriber.subscribe(Array(text: name))
                    desired.insert(name)
                } else {
                    subscriber.unsubscribe(Array(text: name))
                    desired.remove(name)
                }
                // Let some replies arrive between the calls, so that every order of
                // command and reply happens.
                if step % 3 == 0 {
                    loop.runOnce(blocking: false)
                }
            }
            #expect(subscriber.subscribedCount == desired.count)

            let converged = driver.run {
                names.allSatisfy { subscriber.isConfirmed(Array(text: $0)) == desired.contains($0) }
            }
            #expect(converged)
            for name in names {
                let expected: Int64 = desired.contains(name) ? 1 : 0
                #expect(driver.run { redisSubscriberCount(publisher, Array(text: name)) == expected })
            }

            recorder.messages = []
            for name in names {
                _ = publish(publisher, name, "probe")
            }
            #expect(driver.run { recorder.messages.count == desired.count })
            let delivered = Set(recorder.messages.map { String(decoding: $0.channel, as: UTF8.self) })
            #expect(delivered == desired)
            #expect(recorder.disconnectReasons.isEmpty)
        }

        @Test func resubscribeAfterServerRestart() throws {
            let server = try RedisServerProcess()
            let (subscriber, publisher, recorder) = makeClients(server)
            defer { shutDown(subscriber, publisher) }
            let channel = Array(text: "events")

            subscriber.subscribe(channel)
            #expect(driver.run { subscriber.isConfirmed(channel) })
            #expect(driver.run { publisher.isConnected })

            server.crash()
            #expect(driver.run { recorder.disconnectReasons.count == 1 })
            #expect(!subscriber.isConnected)
            #expect(!subscriber.isConfirmed(channel))
            #expect(subscriber.subscribedCount == 1)
            #expect(driver.run { subscriber.reconnectAttemptCount >= 2 })

            try server.restart()
            #expect(driver.run { recorder.connectedCount == 2 })
            #expect(driver.run { subscriber.isConfirmed(channel) })
            #expect(recorder.confirmationCount(of: "events") == 2)
            #expect(subscriber.reconnectCount == 1)

            #expect(driver.run { publisher.isConnected })
            #expect(publish(publisher, "events", "after restart") == 1)
            #expect(driver.run { recorder.payloads(on: "events") == ["after restart"] })
        }

        @Test func changesDuringOutageApplyOnReconnect() throws {
            let server = try RedisServerProcess()
            let (subscriber, publisher, recorder) = makeClients(server)
            defer { shutDown(subscriber, publisher) }
            let dropped = Array(text: "dropped")
            let added = Array(text: "added")

            subscriber.subscribe(dropped)
            #expect(driver.run { subscriber.isConfirmed(dropped) })

            server.crash()
            #expect(driver.run { recorder.disconnectReasons.count == 1 })
            subscriber.unsubscribe(dropped)
            subscriber.subscribe(added)
            #expect(subscriber.subscribedCount == 1)

            try server.restart()
            #expect(driver.run { subscriber.isConfirmed(added) })
            #expect(!subscriber.isConfirmed(dropped))
            #expect(recorder.confirmationCount(of: "dropped") == 1)
            #expect(driver.run { publisher.isConnected })
            #expect(redisSubscriberCount(publisher, dropped) == 0)
            #expect(redisSubscriberCount(publisher, added) == 1)
        }

        @Test func largePayloadArrivesIntact() throws {
            let server = try RedisServerProcess()
            let (subscriber, publisher, recorder) = makeClients(server)
            defer { shutDown(subscriber, publisher) }
            let channel = Array(text: "bulk")

            subscriber.subscribe(channel)
            #expect(driver.run { subscriber.isConfirmed(channel) })
            #expect(driver.run { publisher.isConnected })

            var payload: [UInt8] = []
            for index in 0..<(2 << 20) {
                payload.append(UInt8(truncatingIfNeeded: index &* 131 &+ 7))
            }
            let published = driver.send(publisher, [Array(text: "PUBLISH"), channel, payload])
            #expect(published == .success(.integer(1)))
            #expect(driver.run { recorder.messages.count == 1 })
            #expect(recorder.messages.first?.payload == payload)
        }

        @Test func dropConnectionResubscribes() throws {
            let server = try RedisServerProcess()
            let (subscriber, publisher, recorder) = makeClients(server)
            defer { shutDown(subscriber, publisher) }
            let channel = Array(text: "probe")

            subscriber.subscribe(channel)
            #expect(driver.run { subscriber.isConfirmed(channel) })
            #expect(driver.run { publisher.isConnected })

            subscriber.dropConnection(reason: "probe missing")
            #expect(recorder.disconnectReasons == ["probe missing"])
            #expect(!subscriber.isConfirmed(channel))

            #expect(driver.run { recorder.connectedCount == 2 })
            #expect(driver.run { subscriber.isConfirmed(channel) })
            #expect(publish(publisher, "probe", "back") == 1)
            #expect(driver.run { recorder.payloads(on: "probe") == ["back"] })
        }

        @Test func stopEndsSubscriptions() throws {
            let server = try RedisServerProcess()
            let (subscriber, publisher, recorder) = makeClients(server)
            defer { shutDown(subscriber, publisher) }
            let channel = Array(text: "closing")

            subscriber.subscribe(channel)
            #expect(driver.run { subscriber.isConfirmed(channel) })
            #expect(driver.run { publisher.isConnected })

            subscriber.stop()
            #expect(!subscriber.isConnected)
            #expect(recorder.disconnectReasons.isEmpty)
            #expect(driver.run { redisSubscriberCount(publisher, channel) == 0 })
            subscriber.subscribe(Array(text: "ignored"))
            #expect(subscriber.confirmedCount == 0)
        }
    }
}

/// A small deterministic random generator, so a failing churn sequence can be replayed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
