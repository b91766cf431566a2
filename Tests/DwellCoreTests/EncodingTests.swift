import DwellCore
import Testing

@Suite("Response encoding")
struct EncodingTests {
    @Test("poll answer splices encoded messages")
    func pollAnswer() {
        let body = JSONText.pollAnswer(
            messages: [Array(#"{"id":1}"#.utf8), Array(#"{"id":2}"#.utf8)], lastEventID: 2, hasMore: true)
        #expect(
            String(decoding: body, as: UTF8.self) == #"{"messages":[{"id":1},{"id":2}],"lastEventId":2,"hasMore":true}"#
        )
    }

    @Test("timeout answer carries extra fields")
    func timeoutAnswer() {
        let body = JSONText.pollAnswer(messages: [], lastEventID: 7, hasMore: false, extraFields: #","timeout":true"#)
        #expect(
            String(decoding: body, as: UTF8.self) == #"{"messages":[],"lastEventId":7,"hasMore":false,"timeout":true}"#)
    }

    @Test("error strings are escaped")
    func errorEscaping() {
        #expect(JSONText.error("bad \"x\"\n\u{1}") == #"{"error":"bad \"x\"\n\u0001"}"#)
    }
}

@Suite("Message merge")
struct MessageMergeTests {
    private func message(_ id: UInt64) -> EncodedMessage {
        EncodedMessage(id: id, bytes: Array("{\"id\":\(id)}".utf8))
    }

    @Test("deduplicates and orders by id")
    func dedupe() {
        let result = MessageMerge.answer(
            backlog: [message(3), message(4)], backlogHasMore: false, early: [message(4), message(5), message(2)],
            after: 2, limit: 10)
        #expect(result.messages.map(\.id) == [3, 4, 5])
        #expect(!result.hasMore)
    }

    @Test("limit cuts and sets hasMore")
    func limit() {
        let result = MessageMerge.answer(
            backlog: [message(3), message(4)], backlogHasMore: false, early: [message(5)], after: 0, limit: 2)
        #expect(result.messages.map(\.id) == [3, 4])
        #expect(result.hasMore)
    }

    @Test("messages at or before the cursor dropped")
    func cursorFilter() {
        let result = MessageMerge.answer(backlog: [], backlogHasMore: false, early: [message(1)], after: 1, limit: 5)
        #expect(result.messages.isEmpty)
    }
}

@Suite("Channel index")
struct ChannelIndexTests {
    final class Poll {}

    @Test("insert, look up and remove")
    func insertRemove() {
        var index = ChannelIndex<Poll>()
        let first = Poll()
        let second = Poll()
        index.insert(first, channels: ["a", "b"])
        index.insert(second, channels: ["b"])
        #expect(index.count == 2)
        #expect(index.count(on: "b") == 2)
        #expect(index.allElements.count == 2)

        #expect(index.remove(first, channels: ["a", "b"]) == ["a"])
        #expect(index.count == 1)
        #expect(index.remove(first, channels: ["a", "b"]).isEmpty)
        #expect(index.count == 1)
        #expect(index.remove(second, channels: ["b"]) == ["b"])
        #expect(index.count == 0)
        #expect(!index.contains(channel: "b"))
    }
}

@Suite("Timer wheel")
struct TimerWheelTests {
    final class Item {}

    @Test("expires due entries only")
    func expiry() {
        var wheel = TimerWheel<Item>(tickMilliseconds: 100, now: 1_000)
        let early = Item()
        let late = Item()
        wheel.schedule(early, token: 1, at: 1_250)
        wheel.schedule(late, token: 2, at: 3_000)
        #expect(wheel.expire(now: 1_150).isEmpty)
        let due = wheel.expire(now: 1_300)
        #expect(due.count == 1)
        #expect(due.first?.element === early)
        #expect(wheel.count == 1)
        #expect(wheel.expire(now: 10_000).map(\.token) == [2])
    }

    @Test("past deadline fires on next expiry")
    func pastDeadline() {
        var wheel = TimerWheel<Item>(tickMilliseconds: 100, now: 1_000)
        _ = wheel.expire(now: 1_050)
        wheel.schedule(Item(), token: 0, at: 500)
        #expect(wheel.expire(now: 1_099).isEmpty)
        #expect(wheel.expire(now: 1_100).count == 1)
    }

    @Test("never fires later than the tick after its deadline")
    func neverLate() {
        var wheel = TimerWheel<Item>(tickMilliseconds: 100, now: 0)
        for deadline in stride(from: UInt64(1), to: 1_000, by: 37) {
            wheel.schedule(Item(), token: UInt32(deadline), at: deadline)
        }
        var now: UInt64 = 0
        while wheel.count > 0 {
            now += 100
            for entry in wheel.expire(now: now) {
                #expect(UInt64(entry.token) + 100 > now)
            }
        }
    }
}
