import DwellCore
import Testing

@Suite("Retention gap")
struct RetentionGapTests {
    @Test("cursor at or past the gap misses nothing")
    func noGap() {
        #expect(!RetentionGap.isMissed(cursor: 9, firstRetainedID: 10))
        #expect(!RetentionGap.isMissed(cursor: 20, firstRetainedID: 10))
        #expect(!RetentionGap.isMissed(cursor: 0, firstRetainedID: 1))
    }

    @Test("cursor behind the gap missed messages")
    func gap() {
        #expect(RetentionGap.isMissed(cursor: 3, firstRetainedID: 10))
        #expect(RetentionGap.isMissed(cursor: 0, firstRetainedID: 2))
    }

    @Test("cursor moves past the gap only")
    func cursorPastGap() {
        #expect(RetentionGap.cursorPastGap(cursor: 3, firstRetainedID: 10, current: 50) == 9)
        #expect(RetentionGap.cursorPastGap(cursor: 3, firstRetainedID: 60, current: 50) == 50)
        #expect(RetentionGap.cursorPastGap(cursor: 30, firstRetainedID: 10, current: 50) == 30)
        #expect(RetentionGap.cursorPastGap(cursor: 3, firstRetainedID: 0, current: 50) == 3)
    }
}
