import CLibUV
import DwellEventLoop
import Glibc

/// A child process started with `uv_spawn`, whose exit is reported on the loop.
///
/// `inheritedDescriptors` lists parent descriptors that appear in the child as
/// 3, 4, ... in order; standard input, output and error are shared.
final class ChildProcess {
    private let handle: UnsafeMutablePointer<uv_process_t>
    private var onExit: ((ExitReason) -> Void)?
    private(set) var hasExited = false
    private(set) var pid: Int32 = 0

    enum ExitReason: CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        var description: String {
            switch self {
            case .exited(let status): "status=\(status)"
            case .signaled(let signal): "signal=\(signal)"
            }
        }
    }

    init(
        loop: EventLoop, program: String, arguments: [String], inheritedDescriptors: [Int32] = [],
        onExit: @escaping (ExitReason) -> Void
    ) throws(SystemError) {
        let handle = UnsafeMutablePointer<uv_process_t>.allocate(capacity: 1)
        self.handle = handle
        self.onExit = onExit

        var cArguments: [UnsafeMutablePointer<CChar>?] = ([program] + arguments).map { strdup($0) }
        cArguments.append(nil)
        let file = strdup(program)
        defer {
            cArguments.forEach { free($0) }
            free(file)
        }

        var stdio = [uv_stdio_container_t](repeating: uv_stdio_container_t(), count: 3 + inheritedDescriptors.count)
        for index in 0..<3 {
            stdio[index].flags = UV_INHERIT_FD
            stdio[index].data.fd = Int32(index)
        }
        for (offset, descriptor) in inheritedDescriptors.enumerated() {
            stdio[3 + offset].flags = UV_INHERIT_FD
            stdio[3 + offset].data.fd = descriptor
        }

        var options = uv_process_options_t()
        options.exit_cb = { raw, status, signal in
            let child = Unmanaged<ChildProcess>.fromOpaque(raw!.pointee.data).takeUnretainedValue()
            child.exited(status: status, signal: signal)
        }
        options.file = UnsafePointer(file)
        let status = cArguments.withUnsafeMutableBufferPointer { argv in
            stdio.withUnsafeMutableBufferPointer { containers in
                options.args = argv.baseAddress
                options.stdio_count = Int32(containers.count)
                options.stdio = containers.baseAddress
                return uv_spawn(loop.raw, handle, &options)
            }
        }
        if status != 0 {
            // A failed spawn still initialised the handle, which must be closed.
            uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)) { raw in
                raw!.withMemoryRebound(to: uv_process_t.self, capacity: 1) { $0.deallocate() }
            }
            throw SystemError(call: "uv_spawn(\(program))", uvStatus: status)
        }

        pid = handle.pointee.pid
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    func signal(_ number: Int32) {
        guard !hasExited else { return }
        kill(pid, number)
    }

    private func exited(status: Int64, signal: Int32) {
        hasExited = true
        let reason: ExitReason = signal != 0 ? .signaled(signal) : .exited(Int32(truncatingIfNeeded: status))
        let action = onExit
        onExit = nil
        uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)) { raw in
            Unmanaged<ChildProcess>.fromOpaque(raw!.pointee.data!).release()
            raw!.withMemoryRebound(to: uv_process_t.self, capacity: 1) { $0.deallocate() }
        }
        action?(reason)
    }
}
