/// Held polls indexed by channel, so that a message touches only the polls
/// that asked for its channel.
///
/// An element is registered under each of its channels once; removal takes the
/// same channel list. The index does not own any other state of the element.
public struct ChannelIndex<Element: AnyObject> {
    private var byChannel: [String: [ObjectIdentifier: Element]] = [:]

    public private(set) var count = 0

    public init() {}

    public mutating func insert(_ element: Element, channels: [String]) {
        let key = ObjectIdentifier(element)
        for channel in channels {
            byChannel[channel, default: [:]][key] = element
        }
        count += 1
    }

    /// Removes an element; returns the channels left with no element.
    @discardableResult
    public mutating func remove(_ element: Element, channels: [String]) -> [String] {
        let key = ObjectIdentifier(element)
        var emptied: [String] = []
        var wasPresent = false
        for channel in channels {
            // Mutating in place through the optional keeps the inner dictionary
            // uniquely referenced; a copy would cost O(n) per removal.
            guard byChannel[channel]?.removeValue(forKey: key) != nil else { continue }
            wasPresent = true
            if byChannel[channel]?.isEmpty == true {
                byChannel.removeValue(forKey: channel)
                emptied.append(channel)
            }
        }
        if wasPresent {
            count -= 1
        }
        return emptied
    }

    /// The elements registered under `channel`, in no particular order.
    public func elements(on channel: String) -> [Element] {
        guard let members = byChannel[channel] else { return [] }
        return Array(members.values)
    }

    public func contains(channel: String) -> Bool {
        byChannel[channel] != nil
    }

    public func count(on channel: String) -> Int {
        byChannel[channel]?.count ?? 0
    }

    public var channels: Dictionary<String, [ObjectIdentifier: Element]>.Keys {
        byChannel.keys
    }

    /// Every registered element once, whatever its number of channels.
    public var allElements: [Element] {
        var seen = Set<ObjectIdentifier>()
        var result: [Element] = []
        for members in byChannel.values {
            for (key, element) in members where seen.insert(key).inserted {
                result.append(element)
            }
        }
        return result
    }
}
