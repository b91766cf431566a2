/// A request that the worker rejects before it reaches Redis, with the status
/// code and a message that names the offending value.
public enum RequestError: Error, Equatable {
    case badRequest(String)
    case forbidden(String)
    case notFound(String)
    case methodNotAllowed(allowed: String)
    case payloadTooLarge(String)
    case tooManyRequests(String, retryAfterSeconds: Int)
    case unavailable(String)

    public var status: Int {
        switch self {
        case .badRequest: 400
        case .forbidden: 403
        case .notFound: 404
        case .methodNotAllowed: 405
        case .payloadTooLarge: 413
        case .tooManyRequests: 429
        case .unavailable: 503
        }
    }

    public var message: String {
        switch self {
        case .badRequest(let message), .forbidden(let message), .notFound(let message), .payloadTooLarge(let message),
            .unavailable(let message):
            message
        case .tooManyRequests(let message, _):
            message
        case .methodNotAllowed(let allowed):
            "method not allowed; use \(allowed)"
        }
    }
}
