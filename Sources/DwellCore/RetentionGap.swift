/// The arithmetic of retention gaps: whether a cursor fell behind what a channel
/// still retains, and where to move it when nothing retained is left.
///
/// `firstRetainedID` is one past the highest id trimmed from the channels read,
/// so every id from it on that belonged to them is still stored.
public enum RetentionGap {
    /// Whether messages after `cursor` were trimmed before the client read them.
    public static func isMissed(cursor: UInt64, firstRetainedID: UInt64) -> Bool {
        firstRetainedID > cursor + 1
    }

    /// The cursor for an answer that reports a gap but has no message: past the
    /// trimmed ids, never past the current counter, never behind the cursor.
    public static func cursorPastGap(cursor: UInt64, firstRetainedID: UInt64, current: UInt64) -> UInt64 {
        guard firstRetainedID > 0 else { return cursor }
        return max(cursor, min(firstRetainedID - 1, current))
    }
}
