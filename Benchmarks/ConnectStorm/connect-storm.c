// connect-storm: a lean C load generator for the `connect` scenario of presence-bench (issue 19).
//
// Sets up N WebSocket connections with at most K set-ups in flight, exactly as `presence-bench
// connect` does on the wire: TCP connect to the server, `GET /ws?token=<fresh HS256 JWT>` upgrade,
// a masked `{"type":"join","channel":"c<j % C>"}` frame, then waits for the connection's own
// `presence` event (user_id u<j>, that channel, online true). Every connection keeps reading and
// answers pings. Reports set-ups per second (first connect start → last own presence), latency,
// and the server's CPU per connection from /proc/PID/stat, then closes every connection with a
// close frame. One thread, nonblocking sockets, level-triggered epoll; the Swift generator costs
// several times more CPU per connection, which on a 2-core box capped every server it measured.
//
//   connect-storm --url ws://127.0.0.1:PORT/ws --pid PID [--connections N] [--json] ...  (--help)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define READ_BUFFER (256 * 1024)
#define MAX_EVENTS 1024
#define MAX_HEAD 16384              // longest upgrade response head accepted
#define MAX_MESSAGE (1 << 20)       // longest server frame accepted (presence-bench's limit)
#define TOKEN_LIFETIME 300          // seconds (TokenMint.lifetime)

static const char usage_text[] =
    "usage: connect-storm [options]\n"
    "\n"
    "  --url ws://HOST:PORT/PATH   server to load (default ws://127.0.0.1:8082/ws)\n"
    "  --port P                    shorthand for --url ws://127.0.0.1:P/ws\n"
    "  --pid PID                   the server's pid: CPU and RSS from /proc/PID\n"
    "  --jwt-secret S, --secret S  HS256 secret (= server's WS_TOKEN_SECRET; default: $WS_TOKEN_SECRET)\n"
    "  --audience A                token aud (default presenced)\n"
    "  --origin O                  send this Origin header (default: none)\n"
    "  --connections N             connections (default 5000)\n"
    "  --channels C                channels (default N/10)\n"
    "  --concurrency K             set-ups in flight at once (default 256)\n"
    "  --sources K                 spread client sockets over 127.0.0.1..K (default 254 for a loopback\n"
    "                              server, 0 = no bind)\n"
    "  --timeout D                 limit for the whole set-up (default 60s; 10, 10s, 500ms, 2m)\n"
    "  --json                      one JSON object on stdout instead of the human report\n"
    "  --quiet                     no progress lines on stderr\n";

// ---- Options -------------------------------------------------------------------------------------

struct options {
    const char *url;
    char host_header[300];          // Host header: host[:port]
    char display[32];               // ip:port
    struct sockaddr_in server;
    char path[1100];                // request path without the token
    long pid;                       // 0 = none
    const char *secret;
    char audience_json[300];        // the audience as a JSON string, quotes included
    char origin_line[600];          // "Origin: O\r\n" or ""
    int connections, channels, concurrency, sources;
    int64_t timeout_ns;
    bool json, quiet;
};

static struct options opt;

// JSON string quoting (quotes, backslashes, control characters).
static void json_quote(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    out[o++] = '"';
    for (; *s && o + 8 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') { out[o++] = '\\'; out[o++] = (char)ch; }
        else if (ch < 0x20) o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        else out[o++] = (char)ch;
    }
    out[o++] = '"';
    out[o] = 0;
}

// One line on stderr (and, with --json, an {"error"} object on stdout for scripts); exits.
static void die(int code, const char *fmt, ...)
{
    char message[512], quoted[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    fprintf(stderr, "connect-storm: %s\n", message);
    if (opt.json) {
        json_quote(quoted, sizeof quoted, message);
        printf("{\"scenario\":\"connect\",\"error\":%s}\n", quoted);
    }
    exit(code);
}

static long parse_int(const char *flag, const char *text, long low, long high)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < low || v > high)
        die(2, "%s %s: expected an integer in %ld...%ld", flag, text, low, high);
    return v;
}

// Durations as presence-bench takes them: 10, 10s, 500ms, 2m.
static int64_t parse_duration(const char *flag, const char *text)
{
    char *end;
    double v = strtod(text, &end);
    double scale = 1e9;
    if (strcmp(end, "ms") == 0) scale = 1e6;
    else if (strcmp(end, "m") == 0) scale = 60e9;
    else if (strcmp(end, "s") != 0 && *end) end = NULL;
    if (end == NULL || end == text || !(v > 0) || !isfinite(v))
        die(2, "%s %s: expected a duration like 10, 10s, 500ms, 2m", flag, text);
    return (int64_t)(v * scale);
}

// ws://host[:port][/path]; host an IPv4 literal or a name resolved once (IPv4 only).
static void parse_url(const char *url)
{
    if (strncmp(url, "ws://", 5) != 0) die(2, "--url %s: expected ws://HOST:PORT/PATH", url);
    const char *authority = url + 5;
    const char *slash = strchr(authority, '/');
    size_t alen = slash ? (size_t)(slash - authority) : strlen(authority);
    const char *path = slash ? slash : "/";
    if (alen == 0 || alen >= 256 || strlen(path) + 1 >= sizeof opt.path) die(2, "--url %s: bad host or path", url);
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7F) die(2, "--url %s: the path must be printable ASCII", url);
    char host[256];
    memcpy(host, authority, alen);
    host[alen] = 0;
    long port = 80;
    char *colon = strrchr(host, ':');
    if (colon) {
        *colon = 0;
        port = parse_int("--url port", colon + 1, 1, 65535);
    }
    if (!host[0]) die(2, "--url %s: no host", url);
    memset(&opt.server, 0, sizeof opt.server);
    opt.server.sin_family = AF_INET;
    opt.server.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &opt.server.sin_addr) != 1) {
        struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;
        if (getaddrinfo(host, NULL, &hints, &res) != 0) die(1, "cannot resolve %s to an IPv4 address", host);
        opt.server.sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
        freeaddrinfo(res);
    }
    if (port == 80) snprintf(opt.host_header, sizeof opt.host_header, "%s", host);
    else snprintf(opt.host_header, sizeof opt.host_header, "%s:%ld", host, port);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &opt.server.sin_addr, ip, sizeof ip);
    snprintf(opt.display, sizeof opt.display, "%s:%ld", ip, port);
    snprintf(opt.path, sizeof opt.path, "%s%c", path, strchr(path, '?') ? '&' : '?');
    opt.url = url;
}

static void parse_options(int argc, char **argv)
{
    static char port_url[64];
    const char *url = "ws://127.0.0.1:8082/ws", *audience = "presenced", *origin = NULL;
    long connections = 5000, channels = 0;
    opt.secret = getenv("WS_TOKEN_SECRET");
    opt.concurrency = 256;
    opt.sources = -1;
    opt.timeout_ns = 60000000000LL;
    static const char *const with_value[] = { "--url", "--port", "--pid", "--jwt-secret", "--secret", "--audience", "--origin",
                                              "--connections", "--channels", "--concurrency", "--sources", "--timeout" };
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) { fputs(usage_text, stdout); exit(0); }
        if (strcmp(flag, "--json") == 0) { opt.json = true; continue; }
        if (strcmp(flag, "--quiet") == 0) { opt.quiet = true; continue; }
        bool known = false;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++) known |= strcmp(flag, with_value[k]) == 0;
        if (!known) die(2, "unknown option %s (see --help)", flag);
        if (i + 1 >= argc) die(2, "%s needs a value", flag);
        const char *v = argv[++i];
        if (strcmp(flag, "--url") == 0) url = v;
        else if (strcmp(flag, "--port") == 0) {
            snprintf(port_url, sizeof port_url, "ws://127.0.0.1:%ld/ws", parse_int(flag, v, 1, 65535));
            url = port_url;
        }
        else if (strcmp(flag, "--pid") == 0) opt.pid = parse_int(flag, v, 1, INT_MAX);
        else if (strcmp(flag, "--jwt-secret") == 0 || strcmp(flag, "--secret") == 0) opt.secret = v;
        else if (strcmp(flag, "--audience") == 0) audience = v;
        else if (strcmp(flag, "--origin") == 0) origin = v;
        else if (strcmp(flag, "--connections") == 0) connections = parse_int(flag, v, 1, 10000000);
        else if (strcmp(flag, "--channels") == 0) channels = parse_int(flag, v, 1, 10000000);
        else if (strcmp(flag, "--concurrency") == 0) opt.concurrency = (int)parse_int(flag, v, 1, 1000000);
        else if (strcmp(flag, "--sources") == 0) opt.sources = (int)parse_int(flag, v, 0, 254);
        else opt.timeout_ns = parse_duration(flag, v);              // --timeout
    }
    if (!opt.secret || !*opt.secret) die(2, "--jwt-secret is required (the server's WS_TOKEN_SECRET)");
    for (const char *a = audience; *a; a++)
        if ((unsigned char)*a < 0x20 || a - audience >= 100) die(2, "--audience must be at most 100 printable characters");
    if (origin && (strlen(origin) > 500 || strpbrk(origin, "\r\n"))) die(2, "--origin must be one short line");
    parse_url(url);
    json_quote(opt.audience_json, sizeof opt.audience_json, audience);
    if (origin) snprintf(opt.origin_line, sizeof opt.origin_line, "Origin: %s\r\n", origin);
    opt.connections = (int)connections;
    opt.channels = (int)(channels ? channels : (connections / 10 > 0 ? connections / 10 : 1));
    if (opt.sources < 0) opt.sources = (ntohl(opt.server.sin_addr.s_addr) >> 24) == 127 ? 254 : 0;
}

// ---- Clock, randomness, encodings ----------------------------------------------------------------

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t rng_state;

// Seeds the generator from /dev/urandom (once).
static void rng_seed(void)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, &rng_state, sizeof rng_state) != (ssize_t)sizeof rng_state) die(1, "cannot read /dev/urandom");
    close(fd);
}

// splitmix64: fast, and unique enough for jtis, handshake keys and masks.
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void rng_bytes16(uint8_t out[16])
{
    uint64_t a = rng_next(), b = rng_next();
    memcpy(out, &a, 8);
    memcpy(out + 8, &b, 8);
}

// base64 (RFC 4648 §4, padded) or base64url (§5, unpadded, as JWTs use it); returns the length.
static size_t base64(const uint8_t *in, size_t n, char *out, bool url)
{
    const char *abc = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                          : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = abc[v >> 18 & 63]; out[o++] = abc[v >> 12 & 63];
        out[o++] = abc[v >> 6 & 63]; out[o++] = abc[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = abc[v >> 18 & 63]; out[o++] = abc[v >> 12 & 63];
        if (!url) { out[o++] = '='; out[o++] = '='; }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = abc[v >> 18 & 63]; out[o++] = abc[v >> 12 & 63]; out[o++] = abc[v >> 6 & 63];
        if (!url) out[o++] = '=';
    }
    return o;
}

// ---- Tokens and the upgrade request --------------------------------------------------------------

static char jwt_header[64];         // base64url of {"alg":"HS256","typ":"JWT"}
static size_t jwt_header_len;

static void token_init(void)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    jwt_header_len = base64((const uint8_t *)header, sizeof header - 1, jwt_header, true);
}

// An HS256 token as TokenMint makes it: sub aud iat exp jti, exp = iat + 300, a fresh 128-bit jti.
static size_t mint_token(char *out, int user)
{
    uint8_t jti[16];
    char jti_text[24];
    rng_bytes16(jti);
    size_t jti_len = base64(jti, 16, jti_text, true);
    long long iat = (long long)time(NULL);
    char payload[512];
    int payload_len = snprintf(payload, sizeof payload, "{\"sub\":\"u%d\",\"aud\":%s,\"iat\":%lld,\"exp\":%lld,\"jti\":\"%.*s\"}",
                               user, opt.audience_json, iat, iat + TOKEN_LIFETIME, (int)jti_len, jti_text);
    size_t o = jwt_header_len;
    memcpy(out, jwt_header, o);
    out[o++] = '.';
    o += base64((const uint8_t *)payload, (size_t)payload_len, out + o, true);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), opt.secret, (int)strlen(opt.secret), (const unsigned char *)out, o, mac, &mac_len) || mac_len != 32)
        die(1, "HMAC-SHA256 failed");
    out[o++] = '.';
    o += base64(mac, 32, out + o, true);
    return o;
}

// The GET upgrade request as WSCore's ClientHandshake writes it; `key` gets the Sec-WebSocket-Key.
static size_t upgrade_request(char *out, size_t cap, int user, char key[24])
{
    char token[512];
    size_t token_len = mint_token(token, user);
    uint8_t nonce[16];
    rng_bytes16(nonce);
    base64(nonce, 16, key, false);
    int n = snprintf(out, cap,
                     "GET %stoken=%.*s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %.24s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     opt.path, (int)token_len, token, opt.host_header, key, opt.origin_line);
    if (n < 0 || (size_t)n >= cap) die(1, "upgrade request longer than %zu bytes", cap);
    return (size_t)n;
}

// ---- Reading the server's answers ----------------------------------------------------------------

// Start of the value of `quoted_key` ("key", quotes included) in a compact JSON object, or NULL.
static const uint8_t *json_value(const uint8_t *p, size_t n, const char *quoted_key)
{
    size_t klen = strlen(quoted_key);
    const uint8_t *end = p + n;
    while (p < end) {
        const uint8_t *at = memmem(p, (size_t)(end - p), quoted_key, klen);
        if (!at) return NULL;
        const uint8_t *v = at + klen;
        while (v < end && *v == ' ') v++;
        if (v < end && *v == ':') {
            v++;
            while (v < end && *v == ' ') v++;
            return v;
        }
        p = at + 1;
    }
    return NULL;
}

// The string value of `quoted_key` (without quotes) and its length, or NULL.
static const uint8_t *json_string(const uint8_t *p, size_t n, const char *quoted_key, size_t *len)
{
    const uint8_t *v = json_value(p, n, quoted_key), *end = p + n;
    if (!v || v >= end || *v != '"') return NULL;
    for (const uint8_t *s = ++v; s < end; s++) {
        if (*s == '\\') { s++; continue; }
        if (*s == '"') { *len = (size_t)(s - v); return v; }
    }
    return NULL;
}

// Whether s[0..len) is `prefix` followed by the decimal `number` ("u17", "c3").
static bool is_id(const uint8_t *s, size_t len, char prefix, long number)
{
    if (!s || len < 2 || len > 12 || s[0] != (uint8_t)prefix) return false;
    long v = 0;
    for (size_t i = 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    return v == number;
}

static bool equals(const uint8_t *s, size_t len, const char *text)
{
    return s && len == strlen(text) && memcmp(s, text, len) == 0;
}

// Value of header `name` in a response head (name case-insensitive), or NULL.
static const char *header_value(const char *head, size_t n, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    const char *end = head + n, *line = memchr(head, '\n', n);
    while (line && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) return NULL;
        if ((size_t)(eol - line) > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            *len = (size_t)(ve - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

// Whether header `name` holds `token` (case-insensitive, comma-separated list).
static bool header_has_token(const char *head, size_t n, const char *name, const char *token)
{
    size_t len, tlen = strlen(token);
    const char *v = header_value(head, n, name, &len);
    while (v && len > 0) {
        const char *comma = memchr(v, ',', len);
        size_t item = comma ? (size_t)(comma - v) : len;
        const char *s = v, *e = v + item;
        while (s < e && (*s == ' ' || *s == '\t')) s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if ((size_t)(e - s) == tlen && strncasecmp(s, token, tlen) == 0) return true;
        if (!comma) break;
        len -= item + 1;
        v = comma + 1;
    }
    return false;
}

// The Sec-WebSocket-Accept a server must answer to `key` (RFC 6455 §4.2.2).
static void expected_accept(const char key[24], char out[28])
{
    char text[24 + 36];
    memcpy(text, key, 24);
    memcpy(text + 24, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    uint8_t digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)text, sizeof text, digest);
    base64(digest, SHA_DIGEST_LENGTH, out, false);
}

// ---- Connections ---------------------------------------------------------------------------------

enum state { PENDING, CONNECTING, UPGRADING, JOINING, OPEN, CLOSING, CLOSED };

// One client connection. CONNECTING: the upgrade request is not all sent yet (the TCP connect may
// still be in progress); UPGRADING: waiting for the 101; JOINING: waiting for its own presence.
struct conn {
    int fd;
    uint8_t state;
    int64_t since;                  // connect start (ns)
    uint8_t *in;                    // bytes of an unfinished head or frame, kept for the next read
    uint32_t in_len, in_cap;
    uint8_t *out;                   // bytes the socket did not take yet: out[off..off+len)
    uint32_t out_off, out_len, out_cap;
    char key[24];                   // Sec-WebSocket-Key while upgrading
};

// Counts of labelled events (failure reasons, error codes, close codes).
#define TALLY_MAX 32
struct tally {
    int n;
    struct { char key[120]; long count; } e[TALLY_MAX];
};

static struct {
    struct conn *conns;
    int epfd;
    uint8_t *rbuf;
    int next_pending, in_flight, ready, failed, lost, closing;
    long pings;
    int64_t first_start, last_ready;
    int64_t *latencies;             // connect start → own presence, per ready connection (ns)
    struct tally failures, server_errors, close_codes, teardown_codes;
    long teardown_unanswered;
} run;

static void tally_add(struct tally *t, const char *key)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->e[i].key, key) == 0) { t->e[i].count++; return; }
    if (t->n == TALLY_MAX) { t->e[TALLY_MAX - 1].count++; return; }
    // The last entry collects whatever does not fit.
    snprintf(t->e[t->n].key, sizeof t->e[t->n].key, "%s", t->n == TALLY_MAX - 1 ? "(other reasons)" : key);
    t->e[t->n++].count = 1;
}

static void close_conn(int slot)
{
    struct conn *c = &run.conns[slot];
    if (c->fd >= 0) close(c->fd);
    if (c->state == CLOSING) run.closing--;
    c->fd = -1;
    c->state = CLOSED;
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    c->in_len = c->in_cap = c->out_off = c->out_len = c->out_cap = 0;
}

// Records `reason` and closes; set-up failures and losses after set-up are counted apart.
static void fail(int slot, const char *fmt, ...)
{
    char reason[120];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    uint8_t state = run.conns[slot].state;
    tally_add(&run.failures, reason);
    close_conn(slot);
    if (state <= JOINING) {
        if (state != PENDING) run.in_flight--;
        run.failed++;
    } else if (state == OPEN) {
        run.lost++;
    }
}

// A socket error: while connecting it is the connect's, later a read's or write's.
static void fail_errno(int slot, const char *op, int error)
{
    char text[64];
    snprintf(text, sizeof text, "%s", strerror(error));
    text[0] = (char)(text[0] >= 'A' && text[0] <= 'Z' ? text[0] + 32 : text[0]);
    if (run.conns[slot].state == CONNECTING) fail(slot, "cannot connect to %s: %s", opt.display, text);
    else if (run.conns[slot].state == CLOSING) close_conn(slot);
    else fail(slot, "%s: %s", op, text);
}

static bool reserve(uint8_t **buf, uint32_t *cap, size_t need)
{
    if (need <= *cap) return true;
    size_t size = *cap ? *cap : 1024;
    while (size < need) size *= 2;
    uint8_t *p = realloc(*buf, size);
    if (!p) return false;
    *buf = p;
    *cap = (uint32_t)size;
    return true;
}

// Sends now; what the socket does not take is queued and sent on EPOLLOUT.
static void write_bytes(int slot, const void *data, size_t n)
{
    struct conn *c = &run.conns[slot];
    const uint8_t *p = data;
    if (c->out_len == 0) {
        while (n > 0) {
            ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w > 0) { p += w; n -= (size_t)w; continue; }
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            fail_errno(slot, "write", w < 0 ? errno : EPIPE);
            return;
        }
        if (n == 0) return;
        c->out_off = 0;
    }
    if (!reserve(&c->out, &c->out_cap, c->out_off + c->out_len + n)) { fail(slot, "out of memory"); return; }
    memcpy(c->out + c->out_off + c->out_len, p, n);
    c->out_len += (uint32_t)n;
}

// EPOLLOUT: sends what is queued; a CONNECTING connection whose request is all out is UPGRADING.
static void flush(int slot)
{
    struct conn *c = &run.conns[slot];
    while (c->out_len > 0) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL);
        if (w > 0) { c->out_off += (uint32_t)w; c->out_len -= (uint32_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        fail_errno(slot, "write", w < 0 ? errno : EPIPE);
        return;
    }
    c->out_off = 0;
    if (c->state == CONNECTING) c->state = UPGRADING;
}

// One masked frame with a payload of at most 125 bytes (all the client ever sends).
static void send_frame(int slot, uint8_t opcode, const uint8_t *payload, size_t n)
{
    uint8_t frame[6 + 125];
    uint32_t key = (uint32_t)rng_next();
    frame[0] = (uint8_t)(0x80 | opcode);
    frame[1] = (uint8_t)(0x80 | n);
    memcpy(frame + 2, &key, 4);
    for (size_t i = 0; i < n; i++) frame[6 + i] = payload[i] ^ frame[2 + (i & 3)];
    write_bytes(slot, frame, 6 + n);
}

static void send_join(int slot)
{
    char join[64];
    int n = snprintf(join, sizeof join, "{\"type\":\"join\",\"channel\":\"c%d\"}", slot % opt.channels);
    send_frame(slot, 0x1, (const uint8_t *)join, (size_t)n);
}

static void send_close(int slot, uint16_t code)
{
    uint8_t payload[2] = { (uint8_t)(code >> 8), (uint8_t)code };
    send_frame(slot, 0x8, payload, 2);
}

// Opens connection `slot` and sends its upgrade request (at once if the TCP handshake is already
// done, as it usually is on loopback; on EPOLLOUT otherwise).
static void start_connect(int slot)
{
    struct conn *c = &run.conns[slot];
    int64_t now = now_ns();
    if (run.first_start == 0) run.first_start = now;
    c->since = now;
    c->state = CONNECTING;
    run.in_flight++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail(slot, errno == EMFILE || errno == ENFILE ? "fd limit reached: %s" : "socket: %s", strerror(errno));
        return;
    }
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.sources > 0) {
        // The port is chosen at connect time (unique per 4-tuple), not at bind time.
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in local = { .sin_family = AF_INET };
        local.sin_addr.s_addr = htonl(0x7F000001u + (uint32_t)(slot % opt.sources));
        if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
            fail(slot, "bind 127.0.0.%d: %s", 1 + slot % opt.sources, strerror(errno));
            return;
        }
    }
    if (connect(fd, (struct sockaddr *)&opt.server, sizeof opt.server) != 0 && errno != EINPROGRESS) {
        if (errno == EADDRNOTAVAIL) fail(slot, "cannot connect to %s: out of local ports (use --sources)", opt.display);
        else fail_errno(slot, "connect", errno);
        return;
    }
    // Edge-triggered: one registration for the connection's life, no re-poll after each event.
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)slot };
    if (epoll_ctl(run.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) { fail(slot, "epoll_ctl: %s", strerror(errno)); return; }
    char request[4096];
    size_t n = upgrade_request(request, sizeof request, slot, c->key);
    write_bytes(slot, request, n);
    if (c->fd >= 0 && c->out_len == 0) c->state = UPGRADING;
}

// The 101 in p[0..len): returns the head's length, 0 if incomplete, -1 if the upgrade failed.
static long parse_upgrade(int slot, const uint8_t *p, size_t len)
{
    const uint8_t *blank = memmem(p, len, "\r\n\r\n", 4);
    if (!blank) {
        if (len <= MAX_HEAD) return 0;
        fail(slot, "bad upgrade response: head longer than %d bytes", MAX_HEAD);
        return -1;
    }
    const char *head = (const char *)p;
    size_t head_len = (size_t)(blank + 4 - p);
    if (head_len < 13 || strncmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ') {
        fail(slot, "bad upgrade response: no HTTP/1.x status line");
        return -1;
    }
    int status = atoi(head + 9);
    if (status != 101) {
        size_t code_len = 0;
        const uint8_t *code = json_string(p + head_len, len - head_len, "\"code\"", &code_len);
        if (code) fail(slot, "upgrade refused: HTTP %d (%.*s)", status, (int)(code_len < 40 ? code_len : 40), code);
        else fail(slot, "upgrade refused: HTTP %d", status);
        return -1;
    }
    if (!header_has_token(head, head_len, "Upgrade", "websocket") || !header_has_token(head, head_len, "Connection", "upgrade")) {
        fail(slot, "upgrade refused: no Upgrade: websocket and Connection: upgrade");
        return -1;
    }
    char accept[28];
    size_t accept_len = 0;
    expected_accept(run.conns[slot].key, accept);
    const char *got = header_value(head, head_len, "Sec-WebSocket-Accept", &accept_len);
    if (!got || accept_len != 28 || memcmp(got, accept, 28) != 0) {
        fail(slot, "upgrade refused: bad Sec-WebSocket-Accept");
        return -1;
    }
    run.conns[slot].state = JOINING;
    send_join(slot);
    return run.conns[slot].fd >= 0 ? (long)head_len : -1;
}

static void became_ready(int slot, int64_t now)
{
    run.conns[slot].state = OPEN;
    run.in_flight--;
    run.latencies[run.ready++] = now - run.conns[slot].since;
    run.last_ready = now;
}

// The message's type: right after `{"type":"` (where both servers put it) or found by a search.
static const uint8_t *message_type(const uint8_t *p, size_t n, size_t *len)
{
    if (n > 9 && memcmp(p, "{\"type\":\"", 9) == 0) {
        const uint8_t *quote = memchr(p + 9, '"', n - 9);
        if (quote) {
            *len = (size_t)(quote - (p + 9));
            return p + 9;
        }
    }
    return json_string(p, n, "\"type\"", len);
}

// A text message: the connection's own presence event completes its set-up; errors are counted.
static void on_text(int slot, const uint8_t *p, size_t n, int64_t now)
{
    size_t type_len = 0;
    const uint8_t *type = message_type(p, n, &type_len);
    if (equals(type, type_len, "presence")) {
        if (run.conns[slot].state != JOINING) return;
        size_t user_len = 0, channel_len = 0;
        const uint8_t *user = json_string(p, n, "\"user_id\"", &user_len);
        const uint8_t *channel = json_string(p, n, "\"channel\"", &channel_len);
        const uint8_t *online = json_value(p, n, "\"online\"");
        if (is_id(user, user_len, 'u', slot) && is_id(channel, channel_len, 'c', slot % opt.channels)
            && online && p + n - online >= 4 && memcmp(online, "true", 4) == 0)
            became_ready(slot, now);
    } else if (equals(type, type_len, "error")) {
        size_t code_len = 0;
        const uint8_t *code = json_string(p, n, "\"code\"", &code_len);
        char text[64];
        snprintf(text, sizeof text, "%.*s", code ? (int)(code_len < 60 ? code_len : 60) : 1, code ? (const char *)code : "?");
        tally_add(&run.server_errors, text);
        if (run.conns[slot].state == JOINING) fail(slot, "join refused: %s", text);
    }
}

// A close frame: the answer to ours at teardown, or the server ending the connection.
static void on_close(int slot, const uint8_t *payload, size_t n)
{
    char code[16];
    snprintf(code, sizeof code, "%d", n >= 2 ? payload[0] << 8 | payload[1] : 1005);
    if (run.conns[slot].state == CLOSING) {
        tally_add(&run.teardown_codes, code);
        close_conn(slot);
        return;
    }
    tally_add(&run.close_codes, code);
    send_close(slot, 1000);
    if (run.conns[slot].fd >= 0) fail(slot, "server closed the connection with %s", code);
}

static void on_frame(int slot, uint8_t opcode, const uint8_t *payload, size_t n, int64_t now)
{
    switch (opcode) {
    case 0x1: on_text(slot, payload, n, now); break;
    case 0x8: on_close(slot, payload, n); break;
    case 0x9:
        run.pings++;
        if (run.conns[slot].state != CLOSING) send_frame(slot, 0xA, payload, n);
        break;
    default: break;                 // binary, pong
    }
}

// Why a server frame's header is unacceptable (RFC 6455 §5.2), or NULL.
static const char *frame_error(uint8_t b0, uint8_t b1, uint64_t size)
{
    uint8_t opcode = b0 & 0x0F;
    if (b0 & 0x70) return "reserved bits set";
    if (b1 & 0x80) return "masked frame";
    if (opcode >= 0x8) {
        if (opcode > 0xA) return "unknown opcode";
        return (b0 & 0x80) && size <= 125 ? NULL : "fragmented or long control frame";
    }
    if (opcode == 0x0) return "continuation frame without a start";
    if (opcode > 0x2) return "unknown opcode";
    if (!(b0 & 0x80)) return "fragmented message (not reassembled here)";
    return size > MAX_MESSAGE ? "frame longer than 1 MiB" : NULL;
}

// Handles every complete frame in p[0..len) (server frames: unmasked, 2/4/10-byte headers);
// returns the bytes used, or -1 if the connection was closed meanwhile.
static long parse_frames(int slot, const uint8_t *p, size_t len, int64_t now)
{
    size_t off = 0;
    while (run.conns[slot].fd >= 0 && len - off >= 2) {
        const uint8_t *f = p + off;
        size_t avail = len - off, header = 2;
        uint64_t size = f[1] & 0x7F;
        if (size == 126) header = 4;
        else if (size == 127) header = 10;
        if (avail < header) break;
        if (header == 4) size = (uint64_t)f[2] << 8 | f[3];
        if (header == 10) {
            size = 0;
            for (size_t i = 2; i < 10; i++) size = size << 8 | f[i];
        }
        const char *bad = frame_error(f[0], f[1], size);
        if (bad) {
            fail(slot, "protocol error in the server's frames: %s", bad);
            return -1;
        }
        if (avail - header < size) break;
        on_frame(slot, f[0] & 0x0F, f + header, (size_t)size, now);
        off += header + (size_t)size;
    }
    return run.conns[slot].fd >= 0 ? (long)off : -1;
}

// Keeps data[used..n) for the next read (data may be the connection's own buffer).
static void keep(int slot, const uint8_t *data, size_t n, size_t used)
{
    struct conn *c = &run.conns[slot];
    size_t rest = n - used;
    if (data == c->in) {
        memmove(c->in, c->in + used, rest);
        c->in_len = (uint32_t)rest;
        return;
    }
    if (rest == 0) return;
    if (!reserve(&c->in, &c->in_cap, rest)) { fail(slot, "out of memory"); return; }
    memcpy(c->in, data + used, rest);
    c->in_len = (uint32_t)rest;
}

// Bytes read from `slot`, after any kept from earlier reads: the 101, then frames.
static void ingest(int slot, const uint8_t *data, size_t n, int64_t now)
{
    struct conn *c = &run.conns[slot];
    if (c->in_len > 0) {
        if (!reserve(&c->in, &c->in_cap, c->in_len + n)) { fail(slot, "out of memory"); return; }
        memcpy(c->in + c->in_len, data, n);
        c->in_len += (uint32_t)n;
        data = c->in;
        n = c->in_len;
    }
    long used = 0;
    if (c->state <= UPGRADING) {
        used = parse_upgrade(slot, data, n);
        if (used == 0) keep(slot, data, n, 0);
        if (used <= 0) return;
    }
    long frames = parse_frames(slot, data + used, n - (size_t)used, now);
    if (frames >= 0) keep(slot, data, n, (size_t)(used + frames));
}

// Reads until the socket is drained. A short read means it was: with edge-triggered epoll any
// byte arriving after it raises a new event, so the EAGAIN read is saved.
static void readable(int slot)
{
    for (;;) {
        ssize_t n = read(run.conns[slot].fd, run.rbuf, READ_BUFFER);
        if (n > 0) {
            ingest(slot, run.rbuf, (size_t)n, now_ns());
            if (run.conns[slot].fd < 0 || n < READ_BUFFER) return;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n < 0) fail_errno(slot, "read", errno);
        else if (run.conns[slot].state == CLOSING) close_conn(slot);
        else if (run.conns[slot].state == CONNECTING) fail(slot, "cannot connect to %s: closed", opt.display);
        else fail(slot, "server closed the connection without a close frame");
        return;
    }
}

static void dispatch(const struct epoll_event *ev)
{
    int slot = (int)ev->data.u32;
    if (run.conns[slot].fd >= 0 && (ev->events & EPOLLOUT) && run.conns[slot].out_len > 0) flush(slot);
    if (run.conns[slot].fd >= 0 && (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR))) readable(slot);
}

static void poll_once(int timeout_ms)
{
    static struct epoll_event events[MAX_EVENTS];
    int n = epoll_wait(run.epfd, events, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) dispatch(&events[i]);
}

// ---- The run -------------------------------------------------------------------------------------

static void init_run(void)
{
    run.conns = calloc((size_t)opt.connections, sizeof *run.conns);
    run.latencies = calloc((size_t)opt.connections, sizeof *run.latencies);
    run.rbuf = malloc(READ_BUFFER);
    run.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!run.conns || !run.latencies || !run.rbuf) die(1, "out of memory");
    if (run.epfd < 0) die(1, "epoll_create1: %s", strerror(errno));
    for (int i = 0; i < opt.connections; i++) run.conns[i].fd = -1;
}

// The whole set-up ran out of time: whatever is not ready has failed.
static void time_out_all(void)
{
    double seconds = (double)opt.timeout_ns / 1e9;
    static const char *const stage[] = { "before starting", "connecting", "waiting for the upgrade response", "waiting for the join confirmation" };
    for (int slot = 0; slot < opt.connections; slot++) {
        uint8_t state = run.conns[slot].state;
        if (state <= JOINING) fail(slot, "set-up time-out (%g s) %s", seconds, stage[state]);
    }
}

// Connects everything, at most --concurrency set-ups at once, until all are ready or failed.
static void set_up(void)
{
    int64_t begin = now_ns(), deadline = begin + opt.timeout_ns, next_progress = begin + 1000000000;
    while (run.ready + run.failed < opt.connections) {
        while (run.in_flight < opt.concurrency && run.next_pending < opt.connections) start_connect(run.next_pending++);
        int64_t now = now_ns();
        if (now >= deadline) {
            time_out_all();
            break;
        }
        if (!opt.quiet && now >= next_progress) {
            fprintf(stderr, "connect-storm: set-up: %d/%d joined, %d failed\n", run.ready, opt.connections, run.failed);
            next_progress += 1000000000;
        }
        poll_once(10);
    }
}

// Sends a close (1000) on every open connection, waits for the answers (5 s + 0.2 ms per
// connection at most), closes everything; returns the seconds it took.
static double tear_down(void)
{
    int64_t start = now_ns(), deadline = start + 5000000000LL + (int64_t)opt.connections * 200000;
    for (int slot = 0; slot < opt.connections; slot++) {
        if (run.conns[slot].state != OPEN) {
            close_conn(slot);
            continue;
        }
        run.conns[slot].state = CLOSING;
        run.closing++;
        send_close(slot, 1000);
    }
    for (int64_t now = now_ns(); run.closing > 0 && now < deadline; now = now_ns()) {
        int64_t left_ms = (deadline - now + 999999) / 1000000;
        poll_once(left_ms < 50 ? (int)left_ms : 50);
    }
    for (int slot = 0; slot < opt.connections; slot++) {
        if (run.conns[slot].state == CLOSING) run.teardown_unanswered++;
        close_conn(slot);
    }
    return (double)(now_ns() - start) / 1e9;
}

// ---- Readings from /proc and getrusage -----------------------------------------------------------

static bool read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    return true;
}

// What is read before the first connect and after the last ready.
struct sample {
    bool server_ok, machine_ok;
    double server_user, server_system;      // /proc/PID/stat utime, stime (s)
    long server_rss_kib;                    // /proc/PID/status VmRSS, -1 unknown
    double self_user, self_system;          // getrusage(RUSAGE_SELF) (s)
    double tasks, interrupts, steal;        // /proc/stat: user+nice+system, irq+softirq, steal (s)
};

static bool server_cpu(long pid, double *user, double *system)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (!read_file(path, buf, sizeof buf)) return false;
    const char *after_name = strrchr(buf, ')');
    unsigned long long utime, stime;
    // Fields 3 (state) to 13, then 14 utime and 15 stime, in clock ticks.
    if (!after_name || sscanf(after_name + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return false;
    double tick = (double)sysconf(_SC_CLK_TCK);
    *user = (double)utime / tick;
    *system = (double)stime / tick;
    return true;
}

static long server_rss_kib(long pid)
{
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    if (!read_file(path, buf, sizeof buf)) return -1;
    const char *line = strstr(buf, "\nVmRSS:");
    return line ? strtol(line + 7, NULL, 10) : -1;
}

static bool machine_cpu(double *tasks, double *interrupts, double *steal)
{
    char buf[4096];
    unsigned long long f[8];
    if (!read_file("/proc/stat", buf, sizeof buf)
        || sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7]) != 8)
        return false;
    double tick = (double)sysconf(_SC_CLK_TCK);
    *tasks = (double)(f[0] + f[1] + f[2]) / tick;
    *interrupts = (double)(f[5] + f[6]) / tick;
    *steal = (double)f[7] / tick;
    return true;
}

static double load_average(void)
{
    char buf[256];
    return read_file("/proc/loadavg", buf, sizeof buf) ? strtod(buf, NULL) : -1;
}

static struct sample take_sample(void)
{
    struct sample s = { .server_rss_kib = -1 };
    if (opt.pid) {
        s.server_ok = server_cpu(opt.pid, &s.server_user, &s.server_system);
        s.server_rss_kib = server_rss_kib(opt.pid);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    s.self_user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    s.self_system = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    s.machine_ok = machine_cpu(&s.tasks, &s.interrupts, &s.steal);
    return s;
}

// Raises the soft RLIMIT_NOFILE to the hard limit; fails if N connections cannot fit.
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) die(1, "getrlimit: %s", strerror(errno));
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    long long needed = (long long)opt.connections + 16;
    if (rl.rlim_cur != RLIM_INFINITY && (long long)rl.rlim_cur < needed)
        die(1, "fd limit reached: %d connections need about %lld descriptors but this process may open %llu (RLIMIT_NOFILE; raise ulimit -n)",
            opt.connections, needed, (unsigned long long)rl.rlim_cur);
}

// ---- Report --------------------------------------------------------------------------------------

struct latency { long count; double p50, p90, p99, p999, max, mean; };   // µs

static int compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

// Exact percentiles (nearest rank) of the set-up latencies.
static struct latency latency_summary(void)
{
    struct latency l = { .count = run.ready };
    if (run.ready == 0) return l;
    qsort(run.latencies, (size_t)run.ready, sizeof *run.latencies, compare_int64);
    const long permille[4] = { 500, 900, 990, 999 };
    double *out[4] = { &l.p50, &l.p90, &l.p99, &l.p999 };
    for (int i = 0; i < 4; i++) {
        long rank = (permille[i] * run.ready + 999) / 1000;     // ceil(q * n), at least 1
        *out[i] = (double)run.latencies[rank - 1] / 1e3;
    }
    double sum = 0;
    for (int i = 0; i < run.ready; i++) sum += (double)run.latencies[i];
    l.max = (double)run.latencies[run.ready - 1] / 1e3;
    l.mean = sum / run.ready / 1e3;
    return l;
}

// Everything the report shows, computed once.
struct results {
    double elapsed, rate, close_s, load_before;
    struct latency latency;
    bool server_ok, machine_ok;
    double server_user, server_system, generator_user, generator_system;
    double other, interrupts, steal;
    long rss_before, rss_after;
};

static double per_connection_us(double seconds)
{
    return run.ready > 0 ? seconds * 1e6 / run.ready : 0;
}

static struct results results(const struct sample *a, const struct sample *b, double close_s, double load_before)
{
    struct results r = { .close_s = close_s, .load_before = load_before, .rss_before = a->server_rss_kib, .rss_after = b->server_rss_kib };
    r.elapsed = run.ready > 0 ? (double)(run.last_ready - run.first_start) / 1e9 : 0;
    r.rate = r.elapsed > 0 ? run.ready / r.elapsed : 0;
    r.latency = latency_summary();
    r.server_ok = a->server_ok && b->server_ok;
    r.server_user = b->server_user - a->server_user;
    r.server_system = b->server_system - a->server_system;
    r.generator_user = b->self_user - a->self_user;
    r.generator_system = b->self_system - a->self_system;
    r.machine_ok = a->machine_ok && b->machine_ok;
    r.interrupts = b->interrupts - a->interrupts;
    r.steal = b->steal - a->steal;
    r.other = (b->tasks - a->tasks) - (r.generator_user + r.generator_system) - (r.server_ok ? r.server_user + r.server_system : 0);
    if (r.other < 0) r.other = 0;
    return r;
}

static void json_string_out(const char *s)
{
    char quoted[512];
    json_quote(quoted, sizeof quoted, s);
    fputs(quoted, stdout);
}

static int compare_entries(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);   // the key is the entry's first member
}

// A tally sorted by key (in place: only printed at the end).
static void sort_tally(struct tally *t)
{
    qsort(t->e, (size_t)t->n, sizeof t->e[0], compare_entries);
}

static void json_tally(const char *name, struct tally *t)
{
    sort_tally(t);
    printf(",\"%s\":{", name);
    for (int i = 0; i < t->n; i++) {
        if (i) putchar(',');
        json_string_out(t->e[i].key);
        printf(":%ld", t->e[i].count);
    }
    putchar('}');
}

// `"key":value` with 3 decimals, or null when unknown.
static void json_number(const char *key, bool known, double value)
{
    if (known) printf(",\"%s\":%.3f", key, value);
    else printf(",\"%s\":null", key);
}

static void report_json(struct results *r)
{
    double cpu = r->server_user + r->server_system, generator = r->generator_user + r->generator_system;
    printf("{\"scenario\":\"connect\",\"generator\":\"connect-storm\",\"url\":");
    json_string_out(opt.url);
    printf(",\"server\":\"%s\"", opt.display);
    if (opt.pid) printf(",\"server_pid\":%ld", opt.pid);
    else printf(",\"server_pid\":null");
    printf(",\"connections\":%d,\"channels\":%d,\"threads\":1,\"concurrency\":%d,\"sources\":%d,\"cpus\":%ld",
           opt.connections, opt.channels, opt.concurrency, opt.sources, sysconf(_SC_NPROCESSORS_ONLN));
    json_number("loadavg_1m_before", r->load_before >= 0, r->load_before);
    printf(",\"established\":%d,\"failed\":%d", run.ready, run.failed);
    json_number("elapsed_s", true, r->elapsed);
    json_number("connects_per_s", true, r->rate);
    printf(",\"latency\":{\"count\":%ld,\"p50_us\":%.3f,\"p90_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f,\"max_us\":%.3f,\"mean_us\":%.3f}",
           r->latency.count, r->latency.p50, r->latency.p90, r->latency.p99, r->latency.p999, r->latency.max, r->latency.mean);
    json_number("server_cpu_s", r->server_ok, cpu);
    json_number("server_cpu_ms_per_connect", r->server_ok, per_connection_us(cpu) / 1e3);
    json_number("server_user_s", r->server_ok, r->server_user);
    json_number("server_system_s", r->server_ok, r->server_system);
    json_number("server_cpu_us_per_connection", r->server_ok, per_connection_us(cpu));
    json_number("server_user_us_per_connection", r->server_ok, per_connection_us(r->server_user));
    json_number("server_system_us_per_connection", r->server_ok, per_connection_us(r->server_system));
    if (r->rss_before >= 0) printf(",\"server_rss_before_kib\":%ld", r->rss_before); else printf(",\"server_rss_before_kib\":null");
    if (r->rss_after >= 0) printf(",\"server_rss_after_kib\":%ld", r->rss_after); else printf(",\"server_rss_after_kib\":null");
    json_number("generator_cpu_s", true, generator);
    json_number("generator_user_s", true, r->generator_user);
    json_number("generator_system_s", true, r->generator_system);
    json_number("generator_cpu_us_per_connection", true, per_connection_us(generator));
    json_number("close_s", true, r->close_s);
    printf(",\"setup_failed\":%d,\"lost_connections\":%d", run.failed, run.lost);
    json_tally("failures", &run.failures);
    json_tally("server_errors", &run.server_errors);
    json_tally("close_codes", &run.close_codes);
    json_tally("teardown_close_codes", &run.teardown_codes);
    printf(",\"teardown_unanswered\":%ld,\"pings_answered\":%ld", run.teardown_unanswered, run.pings);
    json_number("other_processes_cpu_s", r->machine_ok && r->server_ok, r->other);
    json_number("interrupt_cpu_s", r->machine_ok, r->interrupts);
    json_number("steal_cpu_s", r->machine_ok, r->steal);
    printf("}\n");
}

// 1234567 → "1,234,567".
static const char *count_text(long v, char buf[32])
{
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%ld", v < 0 ? -v : v), o = 0;
    if (v < 0) buf[o++] = '-';
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

// A latency in µs as "123 µs", "4.56 ms" or "1.23 s".
static const char *latency_text(double us, char buf[32])
{
    if (us < 1000) snprintf(buf, 32, us < 10 ? "%.1f µs" : "%.0f µs", us);
    else if (us < 1e6) snprintf(buf, 32, "%.2f ms", us / 1e3);
    else snprintf(buf, 32, "%.2f s", us / 1e6);
    return buf;
}

static void text_tally(const char *label, struct tally *t)
{
    sort_tally(t);
    printf("  %-18s %s", label, t->n ? "" : "none");
    for (int i = 0; i < t->n; i++) printf("%s%s ×%ld", i ? ", " : "", t->e[i].key, t->e[i].count);
    putchar('\n');
}

static void report_text(struct results *r)
{
    char a[32], b[32], c[32], d[32], e[32];
    printf("connect-storm connect → %s (%d connections, %d in flight, %d channels, 1 thread)\n",
           opt.display, opt.connections, opt.concurrency, opt.channels);
    printf("  established        %s of %s in %.3f s, %d failed\n", count_text(run.ready, a), count_text(opt.connections, b), r->elapsed, run.failed);
    printf("  upgrades+joins/s   %s\n", count_text((long)r->rate, a));
    if (r->latency.count > 0)
        printf("  latency            p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%ld)   (connect → upgrade → join → own presence)\n",
               latency_text(r->latency.p50, a), latency_text(r->latency.p90, b), latency_text(r->latency.p99, c),
               latency_text(r->latency.p999, d), latency_text(r->latency.max, e), r->latency.count);
    if (r->server_ok) {
        double cpu = r->server_user + r->server_system;
        printf("  server CPU         %.2f s (%.1f µs per connection: user %.1f + system %.1f)\n", cpu,
               per_connection_us(cpu), per_connection_us(r->server_user), per_connection_us(r->server_system));
    }
    double generator = r->generator_user + r->generator_system;
    printf("  generator CPU      %.2f s (%.1f µs per connection: user %.1f + system %.1f)\n", generator,
           per_connection_us(generator), per_connection_us(r->generator_user), per_connection_us(r->generator_system));
    printf("  closed all in      %.2f s\n", r->close_s);
    printf("  machine            %ld CPUs; load average %.2f before the run", sysconf(_SC_NPROCESSORS_ONLN), r->load_before);
    if (r->machine_ok && r->server_ok) printf("; during the set-up other processes used %.2f CPU-s", r->other);
    if (r->machine_ok) printf(", irq+softirq %.2f CPU-s, steal %.2f CPU-s", r->interrupts, r->steal);
    putchar('\n');
    if (run.lost) printf("  connections lost   %d after set-up\n", run.lost);
    text_tally("server errors", &run.server_errors);
    text_tally("close codes", &run.close_codes);
    text_tally("teardown closes", &run.teardown_codes);
    if (run.teardown_unanswered) printf("  teardown           %ld close(s) unanswered\n", run.teardown_unanswered);
    text_tally("failures", &run.failures);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    parse_options(argc, argv);
    raise_fd_limit();
    double dummy;
    if (opt.pid && !server_cpu(opt.pid, &dummy, &dummy)) die(1, "--pid %ld: no such process", opt.pid);
    rng_seed();
    token_init();
    init_run();
    if (!opt.quiet)
        fprintf(stderr, "connect-storm: connect: %d connections, %d in flight, %d channels\n", opt.connections, opt.concurrency, opt.channels);
    double load_before = load_average();
    struct sample before = take_sample();
    set_up();
    struct sample after = take_sample();
    double close_s = tear_down();
    struct results r = results(&before, &after, close_s, load_before);
    if (opt.json) report_json(&r);
    else report_text(&r);
    bool problems = run.failed > 0 || run.lost > 0 || run.failures.n > 0 || run.server_errors.n > 0 || run.close_codes.n > 0;
    return problems ? 3 : 0;
}
