import DwellClient
import Foundation

let publishUsage = """
    Usage: dwell publish [--url URL] [--idempotency-key KEY] CHANNEL JSON

    Publishes one message whose data is the JSON text given, and prints its id.
    --url defaults to http://127.0.0.1:8080 [DWELL_URL].

    """

let subscribeUsage = """
    Usage: dwell subscribe [--url URL] [--last-event-id N] CHANNEL[,CHANNEL...]

    Polls the channels in a loop and prints each message as one JSON line.
    Without --last-event-id it starts with messages published from now on;
    --last-event-id 0 replays every retained message first.
    --url defaults to http://127.0.0.1:8080 [DWELL_URL].

    """

private func defaultURL() -> String {
    ProcessInfo.processInfo.environment["DWELL_URL"] ?? "http://127.0.0.1:8080"
}

func publish(_ arguments: [String]) throws(UsageError) -> Int32 {
    let parser = OptionParser(
        command: "dwell publish",
        options: [.init(name: "url", takesValue: true), .init(name: "idempotency-key", takesValue: true)])
    let (given, rest) = try parser.parse(arguments)
    if given.contains(where: { $0.0 == "help" }) {
        print(publishUsage, terminator: "")
        return 0
    }
    guard rest.count == 2 else {
        throw UsageError(message: "dwell publish takes CHANNEL and JSON, got \(rest.count) arguments")
    }
    let url = given.last { $0.0 == "url" }?.1 ?? defaultURL()
    let key = given.last { $0.0 == "idempotency-key" }?.1

    do {
        let client = try DwellClient(url: url, timeoutSeconds: 10)
        let id = try client.publish(channel: rest[0], dataJSON: rest[1], idempotencyKey: key)
        print("{\"messageId\":\(id)}")
        return 0
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        return 1
    }
}

func subscribe(_ arguments: [String]) throws(UsageError) -> Int32 {
    let parser = OptionParser(
        command: "dwell subscribe",
        options: [.init(name: "url", takesValue: true), .init(name: "last-event-id", takesValue: true)])
    let (given, rest) = try parser.parse(arguments)
    if given.contains(where: { $0.0 == "help" }) {
        print(subscribeUsage, terminator: "")
        return 0
    }
    guard rest.count == 1 else {
        throw UsageError(message: "dwell subscribe takes one CHANNEL list, got \(rest.count) arguments")
    }
    var cursor: UInt64?
    if let text = given.last(where: { $0.0 == "last-event-id" })?.1 {
        guard let value = UInt64(text) else {
            throw UsageError(message: "invalid value '\(text)' for --last-event-id: use a whole number")
        }
        cursor = value
    }
    let url = given.last { $0.0 == "url" }?.1 ?? defaultURL()
    let channels = rest[0].split(separator: ",").map(String.init)

    let client: DwellClient
    do {
        client = try DwellClient(url: url, timeoutSeconds: 120)
    } catch {
        throw UsageError(message: "\(error)")
    }
    return followChannels(client, channels: channels, cursor: cursor)
}

/// Polls forever like a well-behaved client: at once after an answer, with a
/// capped exponential backoff after a failure.
private func followChannels(_ client: DwellClient, channels: [String], cursor start: UInt64?) -> Int32 {
    var cursor = start
    var epoch: String?
    var backoff = 0.25
    while true {
        do throws(ClientError) {
            let result = try client.poll(channels: channels, cursor: cursor, epoch: epoch)
            if result.isReset {
                FileHandle.standardError.write(Data("warning: Redis lost its data; following the new epoch\n".utf8))
            }
            for message in result.messages {
                // The objects came from a JSON parser, so serializing them again is
                // expected to succeed; an empty line marks the case where it does not.
                let line = (try? JSONSerialization.data(withJSONObject: message, options: [.sortedKeys])) ?? Data()
                FileHandle.standardOutput.write(line + Data("\n".utf8))
            }
            cursor = result.lastEventID
            epoch = result.epoch
            backoff = 0.25
        } catch {
            // A request the server rejects will be rejected again: stop instead of retrying.
            if let status = error.status, (400..<500).contains(status), status != 408, status != 429 {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                return 1
            }
            FileHandle.standardError.write(Data("warning: \(error); retrying in \(backoff) s\n".utf8))
            Thread.sleep(forTimeInterval: backoff)
            backoff = min(backoff * 2, 10)
        }
    }
}
