/// Namespace of the Redis client that runs on presenced's event loop.
///
/// The client itself (RESP through hiredis' reader and formatter, pipelining, pub/sub,
/// reconnect) lands with the Redis issue; until then presenced runs in embedded mode only.
public enum RedisShim {}
