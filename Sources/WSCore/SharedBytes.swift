/// Immutable reference-counted bytes (an encoded frame or an HTTP response), written once and shared by
/// every connection that sends them.
///
/// ONE heap allocation: the object's header is the byte count and the bytes are tail-allocated in the
/// same object (laid out by `ManagedBufferPointer<Int, UInt8>`). Sharing is a retain, never a copy.
/// The bytes are never changed after `make`'s initializer returns, which makes `Sendable` sound.
///
/// Not a `ManagedBuffer` subclass: the standard library marks `ManagedBuffer`'s `Sendable` conformance
/// unavailable, so no subclass of it can be `Sendable`.
public final class SharedBytes: @unchecked Sendable {
    private typealias Layout = ManagedBufferPointer<Int, UInt8>

    /// Allocates `count` bytes and lets `initialize` write all of them (exactly once, before sharing).
    public static func make(count: Int, _ initialize: (UnsafeMutableRawBufferPointer) -> Void) -> SharedBytes {
        precondition(count >= 0, "SharedBytes: negative count")
        let layout = Layout(bufferClass: SharedBytes.self, minimumCapacity: count) { _, _ in count }
        layout.withUnsafeMutablePointerToElements { elements in
            initialize(UnsafeMutableRawBufferPointer(start: elements, count: count))
        }
        return unsafeDowncast(layout.buffer, to: SharedBytes.self)
    }

    /// Copies raw bytes into a new shared buffer.
    public static func copying(_ bytes: UnsafeRawBufferPointer) -> SharedBytes {
        make(count: bytes.count) { destination in
            if let source = bytes.baseAddress, bytes.count > 0 {
                destination.baseAddress!.copyMemory(from: source, byteCount: bytes.count)
            }
        }
    }

    /// Copies a byte collection (an `[UInt8]`, a slice, `String.UTF8View`) into a new shared buffer.
    public static func copying<C: Collection>(_ bytes: C) -> SharedBytes where C.Element == UInt8 {
        let copied: SharedBytes? = bytes.withContiguousStorageIfAvailable { contiguous in
            copying(UnsafeRawBufferPointer(contiguous))
        }
        if let copied { return copied }
        let count = bytes.count
        return make(count: count) { destination in
            var index = 0
            for byte in bytes {
                destination[index] = byte
                index += 1
            }
            precondition(index == count, "SharedBytes: collection count changed while copying")
        }
    }

    /// Only `make` creates instances (through `ManagedBufferPointer`, which lays out the tail storage).
    private init() {
        fatalError("SharedBytes is created only by make(count:_:)")
    }

    /// Number of bytes.
    public var count: Int {
        Layout(unsafeBufferObject: self).header
    }

    /// Calls `body` with the bytes.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let layout = Layout(unsafeBufferObject: self)
        return try layout.withUnsafeMutablePointerToElements { elements in
            try body(UnsafeRawBufferPointer(start: elements, count: layout.header))
        }
    }

    /// Address of the first byte; stable for the object's lifetime (tail storage never moves).
    /// Valid only while a reference to this object is held.
    public var baseAddress: UnsafeRawPointer {
        Layout(unsafeBufferObject: self).withUnsafeMutablePointerToElements { UnsafeRawPointer($0) }
    }

    // Header (Int) and elements (UInt8) are trivial: nothing to destroy in deinit.
}
