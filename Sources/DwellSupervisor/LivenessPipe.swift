import CLibUV
import DwellEventLoop
import Glibc

/// The read end of a worker's liveness pipe. The worker writes a byte from its
/// event loop every second, so silence means the loop is stuck, and end of file
/// means the worker is gone.
final class LivenessPipe {
    private let handle: UnsafeMutablePointer<uv_pipe_t>
    private var onBeat: (() -> Void)?
    private var isClosed = false
    private static var scratch = [UInt8](repeating: 0, count: 64)

    /// Takes ownership of `descriptor`.
    init(loop: EventLoop, descriptor: Int32, onBeat: @escaping () -> Void) throws(SystemError) {
        handle = .allocate(capacity: 1)
        self.onBeat = onBeat
        uv_pipe_init(loop.raw, handle, 0)
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()

        let status = uv_pipe_open(handle, descriptor)
        guard status == 0 else {
            close()
            Glibc.close(descriptor)
            throw SystemError(call: "uv_pipe_open", uvStatus: status)
        }
        uv_read_start(
            streamHandle,
            { _, _, buffer in
                // Beats carry no data, so one small static buffer serves every pipe.
                LivenessPipe.scratch.withUnsafeMutableBytes { bytes in
                    buffer!.pointee = uv_buf_init(
                        bytes.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(bytes.count))
                }
            },
            { stream, count, _ in
                let pipe = Unmanaged<LivenessPipe>.fromOpaque(stream!.pointee.data).takeUnretainedValue()
                if count > 0 {
                    pipe.onBeat?()
                } else if count < 0 {
                    pipe.close()
                }
            })
    }

    private var streamHandle: UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_stream_t.self)
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        onBeat = nil
        uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)) { raw in
            Unmanaged<LivenessPipe>.fromOpaque(raw!.pointee.data!).release()
            raw!.withMemoryRebound(to: uv_pipe_t.self, capacity: 1) { $0.deallocate() }
        }
    }
}
