/// Namespace of presenced's Redis client, which runs on presenced's own event loop.
///
/// RedisShim does no I/O and owns no threads: the host loop supplies sockets and timers through
/// ``RedisHost``; this module is the protocol logic — the RESP codec (hiredis' reader and command
/// formatter, never its sockets), pipelining (``RedisConnection``), the connection state machine
/// and reconnect policy (``RedisBackoff``), pub/sub bookkeeping (``RedisSubscriber``) and scripts
/// (``RedisScript``). ``RedisCluster`` and ``RedisClusterSubscriber`` do the same across a Redis
/// Cluster (slot routing, `MOVED`/`ASK`, sharded pub/sub per master); ``RedisCommanding`` and
/// ``RedisSubscribing`` let callers use either without caring which.
public enum RedisShim {}
