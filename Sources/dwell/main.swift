import CDwellShim
import Glibc

dwell_unblock_all_signals()

let arguments = Array(CommandLine.arguments.dropFirst())
let status: Int32
do {
    status = try runCommand(arguments)
} catch {
    let message = "error: \(error.message)\nTry 'dwell --help' for more information.\n"
    fputs(message, stderr)
    status = 2
}
exit(status)
