import SystemPackage

/// One differential scenario: a sequence of raw iommufd calls with the result each
/// must give. The same scenario runs against MockKernel (in `swift test`) and against a
/// real kernel (in the VM lane); both must give exactly the expected results.
public struct Scenario: Sendable {
    /// A short, unique name, starting with its REFERENCE.md §2 case (`C1.exact`).
    public var name: String
    /// What the scenario checks, in words.
    public var title: String
    /// Where it was written, for messages.
    public var file: String
    public var line: Int
    public var steps: [Step]

    /// The REFERENCE.md §2 group (`A`...`N`) the scenario belongs to.
    public var group: Character { name.first ?? "?" }
}

/// One call of a scenario, as written: `map A B iova=0x100000 length=16K fixed => EEXIST`.
public struct Step: Sendable {
    public var line: Int
    /// The call, such as `map` or `unmap`.
    public var verb: String
    /// Bare words after the verb: object names and flags (`fixed`).
    public var words: [String]
    /// `key=value` arguments.
    public var arguments: [String: String]
    public var expected: Expectation
    /// The line as written, for messages.
    public var text: String

    public func has(_ flag: String) -> Bool { words.contains(flag) }
}

/// What a step must give: success (with optional outputs to check) or an errno.
public struct Expectation: Sendable, Equatable {
    public enum Result: Sendable, Equatable {
        case success
        case failure(Errno)
        /// Setup whose result is not asserted (it is still compared across backends).
        case any
    }

    public var result: Result
    /// Outputs that must have these values, in the order written (`iova=0x1000000`).
    public var outputs: [(key: String, value: String)]

    public static func == (lhs: Expectation, rhs: Expectation) -> Bool {
        lhs.result == rhs.result && lhs.outputs.map { "\($0.key)=\($0.value)" } == rhs.outputs.map { "\($0.key)=\($0.value)" }
    }
}

/// What a step actually gave on one backend.
public struct Outcome: Sendable, Equatable, CustomStringConvertible {
    /// `nil` when the call succeeded.
    public var errno: Errno?
    /// Values the call returned (ids, IOVAs, byte counts, ranges), already formatted.
    public var outputs: [String: String]

    public init(errno: Errno? = nil, outputs: [String: String] = [:]) {
        self.errno = errno
        self.outputs = outputs
    }

    public var description: String {
        let values = outputs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return ([errno.map { ErrnoName.name(of: $0) } ?? "ok"] + values).joined(separator: " ")
    }

    /// Whether this outcome is what the step expects.
    public func satisfies(_ expectation: Expectation) -> Bool {
        switch expectation.result {
        case .any: return true
        case .failure(let wanted): return errno == wanted && expectation.outputs.allSatisfy { outputs[$0.key] == $0.value }
        case .success: return errno == nil && expectation.outputs.allSatisfy { outputs[$0.key] == $0.value }
        }
    }
}

/// The errno spellings scenarios use, as in `<errno.h>`.
public enum ErrnoName {
    static let table: [(String, Int32)] = [
        ("EPERM", 1), ("ENOENT", 2), ("EINTR", 4), ("EIO", 5), ("ENXIO", 6), ("E2BIG", 7), ("EBADF", 9),
        ("EAGAIN", 11), ("ENOMEM", 12), ("EACCES", 13), ("EFAULT", 14), ("EBUSY", 16), ("EEXIST", 17),
        ("ENODEV", 19), ("EINVAL", 22), ("ENOTTY", 25), ("ENOSPC", 28), ("ESPIPE", 29), ("ERANGE", 34), ("ENOSYS", 38),
        ("EOVERFLOW", 75), ("EMSGSIZE", 90), ("EOPNOTSUPP", 95), ("EADDRINUSE", 98),
    ]

    public static func errno(named name: String) -> Errno? {
        table.first { $0.0 == name }.map { Errno(rawValue: $0.1) }
    }

    public static func name(of errno: Errno) -> String {
        table.first { $0.1 == errno.rawValue }?.0 ?? "errno \(errno.rawValue)"
    }
}
