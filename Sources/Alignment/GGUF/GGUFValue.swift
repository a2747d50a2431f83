/// One metadata value of a GGUF file. The numbers are GGUF's value types
/// (`gguf_type`): 0 uint8, 1 int8, 2 uint16, 3 int16, 4 uint32, 5 int32, 6 float32, 7 bool,
/// 8 string, 9 array, 10 uint64, 11 int64, 12 float64.
public enum GGUFValue: Sendable, Equatable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    /// An array of one element type (`typeCode`), with its elements (never arrays themselves).
    case array(typeCode: UInt32, [GGUFValue])

    /// GGUF's number for this value's type.
    public var typeCode: UInt32 {
        switch self {
        case .uint8: 0
        case .int8: 1
        case .uint16: 2
        case .int16: 3
        case .uint32: 4
        case .int32: 5
        case .float32: 6
        case .bool: 7
        case .string: 8
        case .array: 9
        case .uint64: 10
        case .int64: 11
        case .float64: 12
        }
    }

    /// GGUF's name of a value type (for errors).
    static func typeName(_ code: UInt32) -> String {
        let names = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array",
                     "uint64", "int64", "float64"]
        return code < names.count ? names[Int(code)] : "type \(code)"
    }

    /// The value as an integer, when it is one of the integer types.
    public var int: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(v)
        default: nil
        }
    }

    /// The value as a Float, when it is float32 or float64.
    public var float: Float? {
        switch self {
        case .float32(let v): v
        case .float64(let v): Float(v)
        default: nil
        }
    }

    /// The text of a string value.
    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value of a bool.
    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The elements of an array value.
    public var array: [GGUFValue]? {
        if case .array(_, let items) = self { return items }
        return nil
    }

    /// The value and its type for messages: `32 (uint32)`, `"llama" (string)`, `[3 × string]`.
    public var description: String {
        switch self {
        case .array(let code, let items): return "[\(items.count) × \(Self.typeName(code))]"
        case .string(let s): return "\"\(s.count > 60 ? String(s.prefix(60)) + "…" : s)\" (string)"
        case .bool(let b): return "\(b) (bool)"
        case .float32(let f): return "\(f) (float32)"
        case .float64(let f): return "\(f) (float64)"
        default: return "\(int.map(String.init) ?? "?") (\(typeDescription))"
        }
    }

    /// A short description of the value's type (`uint32`, `array of string`).
    var typeDescription: String {
        if case .array(let code, _) = self { return "array of \(Self.typeName(code))" }
        return Self.typeName(typeCode)
    }
}
