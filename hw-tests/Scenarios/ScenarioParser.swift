/// Reads the scenario format:
///
/// ```
/// # comment
/// scenario C1.exact "fixed map over an existing range"
///     ioas A
///     buffer B 64K
///     map A B iova=0x1000000 length=16K fixed    => ok
///     map A B iova=0x1000000 length=16K fixed    => EEXIST
/// end
/// ```
///
/// A step is a verb, bare words and `key=value` arguments, then optionally `=>` and the
/// expected result: `ok`, `ok key=value...`, an errno name (`EEXIST`, `EMSGSIZE num=2`)
/// or `any`. A step without `=>` must succeed.
public enum ScenarioParser {
    public struct Failure: Error, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var message: String
        public var description: String { "\(file):\(line): \(message)" }
    }

    public static func parse(_ text: String, file: String) throws(Failure) -> [Scenario] {
        var scenarios: [Scenario] = []
        var current: Scenario?
        var names: Set<String> = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let trimmed = line.trimmingWhitespace()
            if trimmed.isEmpty { continue }
            if trimmed.hasPrefix("scenario ") {
                guard current == nil else { throw Failure(file: file, line: lineNumber, message: "scenario inside scenario (missing `end`)") }
                let rest = trimmed.dropFirst("scenario ".count).trimmingWhitespace()
                let name = String(rest.prefix { $0 != " " })
                var title = rest.dropFirst(name.count).trimmingWhitespace()
                if title.hasPrefix("\"") && title.hasSuffix("\"") && title.count >= 2 { title = String(title.dropFirst().dropLast()) }
                guard !name.isEmpty, name.first!.isUppercase else { throw Failure(file: file, line: lineNumber, message: "a scenario name starts with its §2 group letter") }
                guard names.insert(name).inserted else { throw Failure(file: file, line: lineNumber, message: "duplicate scenario \(name)") }
                current = Scenario(name: name, title: title, file: file, line: lineNumber, steps: [])
            } else if trimmed == "end" {
                guard let finished = current else { throw Failure(file: file, line: lineNumber, message: "`end` without `scenario`") }
                guard !finished.steps.isEmpty else { throw Failure(file: file, line: lineNumber, message: "scenario \(finished.name) has no steps") }
                scenarios.append(finished)
                current = nil
            } else {
                guard current != nil else { throw Failure(file: file, line: lineNumber, message: "step outside a scenario") }
                current!.steps.append(try parseStep(trimmed, line: lineNumber, file: file))
            }
        }
        if let unfinished = current { throw Failure(file: file, line: unfinished.line, message: "scenario \(unfinished.name) has no `end`") }
        return scenarios
    }

    static func parseStep(_ text: String, line: Int, file: String) throws(Failure) -> Step {
        let halves = text.components(separatedBy: "=>")
        guard halves.count <= 2 else { throw Failure(file: file, line: line, message: "more than one `=>`") }
        let call = halves[0].split(separator: " ").map(String.init)
        guard let verb = call.first else { throw Failure(file: file, line: line, message: "empty step") }
        var words: [String] = []
        var arguments: [String: String] = [:]
        for token in call.dropFirst() {
            if let equals = token.firstIndex(of: "=") {
                arguments[String(token[..<equals])] = String(token[token.index(after: equals)...])
            } else {
                words.append(token)
            }
        }
        var expected = Expectation(result: .success, outputs: [])
        if halves.count == 2 {
            let tokens = halves[1].split(separator: " ").map(String.init)
            guard let head = tokens.first else { throw Failure(file: file, line: line, message: "nothing after `=>`") }
            switch head {
            case "ok": expected.result = .success
            case "any": expected.result = .any
            default:
                guard let errno = ErrnoName.errno(named: head) else { throw Failure(file: file, line: line, message: "unknown result \(head)") }
                expected.result = .failure(errno)
            }
            for token in tokens.dropFirst() {
                let parts = token.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw Failure(file: file, line: line, message: "expected key=value, got \(token)") }
                expected.outputs.append((parts[0], parts[1]))
            }
        }
        return Step(line: line, verb: verb, words: words, arguments: arguments, expected: expected, text: text)
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
    }

    func components(separatedBy separator: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) {
            parts.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }
}
