/// Immutable bytes that many responses write without copying, such as one
/// encoded message sent to 2,000 held polls.
///
/// The storage is allocated once in `init` and freed when the last reference
/// goes. Each write in progress keeps a reference until libuv reports it done.
public final class SharedBytes: @unchecked Sendable {
    /// Start of the storage, or nil when `count` is 0. Never written after `init`.
    let baseAddress: UnsafeMutableRawPointer?
    public let count: Int

    public init(_ bytes: [UInt8]) {
        count = bytes.count
        guard !bytes.isEmpty else {
            baseAddress = nil
            return
        }

        let storage = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 1)
        bytes.withUnsafeBytes { source in
            // A non-empty array always has storage.
            storage.copyMemory(from: source.baseAddress!, byteCount: source.count)
        }
        baseAddress = storage
    }

    public convenience init(_ string: String) {
        self.init(Array(string.utf8))
    }

    deinit {
        baseAddress?.deallocate()
    }

    /// A shared empty body.
    public static let empty = SharedBytes([])

    /// Copies the bytes into an array, for tests and logging rather than the write path.
    public var bytes: [UInt8] {
        guard let baseAddress else { return [] }
        return Array(UnsafeRawBufferPointer(start: baseAddress, count: count))
    }
}
