import CDwellShim
import Glibc

/// A command-line mistake: the message names the option or value, and the
/// process exits with status 2 after a `--help` hint.
struct UsageError: Error {
    let message: String
}

/// Long options parsed with glibc's `getopt_long`, so the usual forms all work:
/// `--port 8080`, `--port=8080`, abbreviations, and options after arguments.
struct OptionParser {
    struct Option {
        let name: String
        let takesValue: Bool
    }

    let command: String
    let options: [Option]

    /// Returns the options given, in order, and the remaining arguments.
    func parse(_ arguments: [String]) throws(UsageError) -> (values: [(String, String)], rest: [String]) {
        var cArguments: [UnsafeMutablePointer<CChar>?] = ([command] + arguments).map { strdup($0) }
        cArguments.append(nil)
        let options = self.options + [Option(name: "help", takesValue: false)]
        var longOptions = options.enumerated().map { index, option in
            CDwellShim.option(
                name: strdup(option.name), has_arg: option.takesValue ? required_argument : no_argument,
                flag: nil, val: Int32(1000 + index))
        }
        longOptions.append(CDwellShim.option(name: nil, has_arg: 0, flag: nil, val: 0))
        defer {
            cArguments.forEach { free($0) }
            longOptions.forEach { free(UnsafeMutableRawPointer(mutating: $0.name)) }
        }

        // getopt keeps its position in globals; reset them for each parse.
        optind = 0
        opterr = 0
        var values: [(String, String)] = []
        let count = Int32(arguments.count + 1)
        while true {
            let code = getopt_long(count, &cArguments, "h", &longOptions, nil)
            if code == -1 { break }
            if code == Int32(UInt8(ascii: "h")) {
                values.append(("help", ""))
                continue
            }
            guard code >= 1000, code < 1000 + Int32(options.count) else {
                let offending = String(cString: cArguments[Int(optind) - 1]!)
                throw UsageError(message: Self.describeFailure(offending, options: options))
            }
            let option = options[Int(code - 1000)]
            values.append((option.name, option.takesValue ? String(cString: optarg) : ""))
        }

        let rest = cArguments[Int(optind)..<Int(count)].map { String(cString: $0!) }
        return (values, rest)
    }

    private static func describeFailure(_ argument: String, options: [Option]) -> String {
        let name = argument.hasPrefix("--") ? String(argument.dropFirst(2).prefix { $0 != "=" }) : argument
        if let option = options.first(where: { $0.name == name }), option.takesValue {
            return "option --\(name) requires a value"
        }
        return "unknown option '\(argument)'"
    }
}
