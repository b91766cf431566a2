/// Builds the `argc`/`argv`/`argvlen` triple that `redisAsyncCommandArgv` takes, so that
/// arguments may contain any byte, including NUL and CRLF.
enum RedisArgv {
    /// Calls `body` with pointers that are valid only during the call.
    ///
    /// All arguments are copied into one buffer, because a Swift array's storage has a
    /// stable address only inside its own `withUnsafeBufferPointer`.
    static func withArgv<Result>(
        _ arguments: [[UInt8]],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> Result
    ) -> Result {
        precondition(!arguments.isEmpty, "a Redis command needs at least its name")

        var storage: [UInt8] = []
        storage.reserveCapacity(arguments.reduce(1) { $0 + $1.count })
        var offsets: [Int] = []
        offsets.reserveCapacity(arguments.count)
        var lengths: [Int] = []
        lengths.reserveCapacity(arguments.count)
        for argument in arguments {
            offsets.append(storage.count)
            lengths.append(argument.count)
            storage.append(contentsOf: argument)
        }
        // One spare byte gives the buffer an address even when every argument is empty.
        storage.append(0)

        return storage.withUnsafeBytes { bytes in
            let base = bytes.baseAddress!.assumingMemoryBound(to: CChar.self)
            var pointers: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { argvLengths in
                    body(Int32(arguments.count), argv.baseAddress!, argvLengths.baseAddress!)
                }
            }
        }
    }
}
