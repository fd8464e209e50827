// peer-uws: the uWebSockets peer of presenced for the benchmark comparison (issue 19): the same
// external protocol as peers/go/main.go (docs/protocol.md: GET /ws?token=JWT, HS256 single-use
// tokens, join/leave/message/typing/ping, presence snapshots, first/last-connection announcements),
// written the way a uWebSockets user would write it:
//
//   - one thread, one uWS::App (uSockets' epoll loop);
//   - channel broadcasts (chat messages, presence announcements) go through uWS's own pub/sub
//     (subscribe per channel, publish once: the topic tree batches each subscriber's frames and
//     writes them at the end of the loop iteration); typing, which skips the sender's own tabs,
//     walks the channel's member list; a joiner's snapshot is sent on its socket, which uWS corks
//     while the message handler runs (the snapshot leaves in one write);
//   - HS256 with OpenSSL's one-shot HMAC() and CRYPTO_memcmp; a small strict JSON reader; the
//     single-use jti map swept like the Go peer's;
//   - uWS's automatic pings (idleTimeout) instead of a ping timer per connection.
//
// uWebSockets is not packaged: build.sh compiles this file against a uWebSockets and a uSockets
// checkout that the user gives (no uWS code is kept in this repository).
//
// Run: WS_TOKEN_SECRET=<at least 32 bytes> PORT=8082 peer-uws

#include "App.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

// ---------------------------------------------------------------------------------------------
// Configuration (docs/operations.md, "Configuration"): the subset that matters to the realtime
// path.

namespace {

constexpr int64_t maxTokenLifetime = 300; // seconds, exp - iat
constexpr int64_t clockLeeway = 5;        // seconds on exp, nbf and a future iat
constexpr size_t maxTokenBytes = 4096;
constexpr size_t maxJTIBytes = 128;
constexpr size_t maxContentBytes = 4096;
constexpr size_t maxChannelsPerConn = 64;
constexpr int64_t typingTimeoutMs = 5000;

struct OriginPolicy {
    bool all = false;
    std::unordered_set<std::string> exact;
    std::vector<std::pair<std::string, std::string>> wildcards; // scheme with "://", ".domain"
};

struct Config {
    std::string bind = "127.0.0.1";
    int port = 8082;
    std::vector<std::string> secrets;
    std::string audience = "presenced";
    int64_t messageRate = 20;
    int64_t presenceGraceMs = 2000;
    int64_t pingIntervalMs = 25000;
    int64_t maxMessageBytes = 65536;
    int64_t maxOutbound = 1 << 20;
    int64_t maxConnections = 100000;
    OriginPolicy origins;
};

[[noreturn]] void fail(const std::string &variable, const std::string &problem) {
    fprintf(stderr, "peer-uws: invalid %s: %s\n", variable.c_str(), problem.c_str());
    exit(78); // EX_CONFIG, like presenced
}

bool parseInt(const std::string &s, int64_t &out) {
    if (s.empty() || s.size() > 18) return false;
    int64_t n = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        n = n * 10 + (c - '0');
    }
    out = n;
    return true;
}

int64_t envInt(const char *name, int64_t def, int64_t min, int64_t max) {
    const char *v = getenv(name);
    if (!v) return def;
    int64_t n;
    if (!parseInt(v, n) || n < min || n > max)
        fail(name, "\"" + std::string(v) + "\" is not a whole number in " + std::to_string(min) + "..." + std::to_string(max));
    return n;
}

// `500ms`, `30s`, `2m`, `1h` or plain seconds, in milliseconds.
int64_t envDurationMs(const char *name, int64_t def, int64_t min) {
    const char *v = getenv(name);
    if (!v) return def;
    std::string s = v;
    int64_t unit = 1000;
    for (auto [suffix, ms] : {std::pair<const char *, int64_t>{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}}) {
        size_t n = strlen(suffix);
        if (s.size() > n && s.compare(s.size() - n, n, suffix) == 0) {
            s.resize(s.size() - n);
            unit = ms;
            break;
        }
    }
    int64_t n;
    if (!parseInt(s, n)) fail(name, "\"" + std::string(v) + "\" is not a duration like 500ms, 30s, 2m or plain seconds");
    if (n * unit < min) fail(name, "must be at least " + std::to_string(min) + "ms");
    return n * unit;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char &c : out) c = (char) tolower((unsigned char) c);
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

Config loadConfig() {
    Config c;
    if (const char *v = getenv("BIND"); v && *v) c.bind = v;
    if (const char *v = getenv("PORT")) {
        int64_t p;
        if (!parseInt(v, p) || p > 65535) fail("PORT", "\"" + std::string(v) + "\" is not a port number (0–65535)");
        c.port = (int) p;
    }
    const char *secret = getenv("WS_TOKEN_SECRET");
    if (!secret || !*secret) fail("WS_TOKEN_SECRET", "required");
    for (const char *name : {"WS_TOKEN_SECRET", "WS_TOKEN_SECRET_PREVIOUS"}) {
        if (const char *s = getenv(name); s && *s) {
            if (strlen(s) < 32) fail(name, "must be at least 32 bytes");
            c.secrets.emplace_back(s);
        }
    }
    if (const char *v = getenv("WS_TOKEN_AUDIENCE")) {
        if (!*v) fail("WS_TOKEN_AUDIENCE", "must not be empty");
        c.audience = v;
    }
    c.messageRate = envInt("MESSAGE_RATE", 20, 0, 1000000);
    c.presenceGraceMs = envDurationMs("PRESENCE_GRACE", 2000, 0);
    c.pingIntervalMs = envDurationMs("PING_INTERVAL", 25000, 100);
    c.maxMessageBytes = envInt("MAX_MESSAGE_BYTES", 65536, 125, 1 << 30);
    c.maxOutbound = envInt("MAX_OUTBOUND_BYTES", 1 << 20, 4096, 1 << 30);
    c.maxConnections = envInt("MAX_CONNECTIONS", 100000, 1, 100000000);
    std::string origins = "https://casa.devarno.cloud,http://localhost:3000";
    if (const char *v = getenv("ALLOWED_ORIGINS")) origins = v;
    size_t start = 0;
    while (start <= origins.size()) {
        size_t end = origins.find(',', start);
        if (end == std::string::npos) end = origins.size();
        std::string e = lower(trim(std::string_view(origins).substr(start, end - start)));
        start = end + 1;
        if (e.empty()) continue;
        if (e == "*") { c.origins.all = true; continue; }
        size_t star = e.find('*');
        if (star != std::string::npos) {
            std::string scheme = e.substr(0, star), domain = e.substr(star + 1);
            if (scheme.size() >= 3 && scheme.compare(scheme.size() - 3, 3, "://") == 0 && domain.size() > 1 && domain[0] == '.') {
                c.origins.wildcards.emplace_back(scheme, domain);
                continue;
            }
        }
        if (!e.empty() && e.back() == '/') e.pop_back();
        c.origins.exact.insert(e);
    }
    return c;
}

bool originAllowed(const OriginPolicy &p, std::string_view origin) {
    if (origin.data() == nullptr || p.all) return true; // no Origin: not a browser
    std::string o = lower(origin);
    if (p.exact.count(o)) return true;
    for (auto &[scheme, domain] : p.wildcards) {
        if (o.compare(0, scheme.size(), scheme) != 0) continue;
        std::string host = o.substr(scheme.size());
        std::string hostOnly = host.substr(0, host.find(':'));
        if (hostOnly.size() > domain.size() && hostOnly.compare(hostOnly.size() - domain.size(), domain.size(), domain) == 0
            && host.find('/') == std::string::npos)
            return true;
    }
    return false;
}

// ---------------------------------------------------------------------------------------------
// A small strict JSON reader (RFC 8259; duplicate keys allowed, the last wins, as Go's decoder).

struct JSON {
    enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
    bool boolean = false;
    double number = 0;
    std::string string;
    std::vector<JSON> items;
    std::vector<std::pair<std::string, JSON>> members;

    const JSON *get(std::string_view key) const {
        const JSON *found = nullptr;
        for (auto &m : members)
            if (m.first == key) found = &m.second;
        return found;
    }
};

struct JSONReader {
    const char *p, *end;
    int depth = 0;

    void space() {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    }
    static void utf8(std::string &out, uint32_t cp) {
        if (cp < 0x80) out += (char) cp;
        else if (cp < 0x800) { out += (char) (0xC0 | cp >> 6); out += (char) (0x80 | (cp & 0x3F)); }
        else if (cp < 0x10000) { out += (char) (0xE0 | cp >> 12); out += (char) (0x80 | (cp >> 6 & 0x3F)); out += (char) (0x80 | (cp & 0x3F)); }
        else { out += (char) (0xF0 | cp >> 18); out += (char) (0x80 | (cp >> 12 & 0x3F)); out += (char) (0x80 | (cp >> 6 & 0x3F)); out += (char) (0x80 | (cp & 0x3F)); }
    }
    bool hex4(uint32_t &out) {
        if (end - p < 4) return false;
        out = 0;
        for (int i = 0; i < 4; i++) {
            char c = *p++;
            out <<= 4;
            if (c >= '0' && c <= '9') out |= c - '0';
            else if (c >= 'a' && c <= 'f') out |= c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') out |= c - 'A' + 10;
            else return false;
        }
        return true;
    }
    bool str(std::string &out) {
        if (p >= end || *p != '"') return false;
        p++;
        while (p < end) {
            unsigned char c = (unsigned char) *p++;
            if (c == '"') return true;
            if (c < 0x20) return false;
            if (c != '\\') { out += (char) c; continue; }
            if (p >= end) return false;
            switch (*p++) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                uint32_t cp;
                if (!hex4(cp)) return false;
                if (cp >= 0xD800 && cp < 0xDC00) {
                    uint32_t low;
                    if (end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                        const char *save = p;
                        p += 2;
                        if (hex4(low) && low >= 0xDC00 && low < 0xE000) {
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                        } else { p = save; cp = 0xFFFD; }
                    } else cp = 0xFFFD;
                } else if (cp >= 0xDC00 && cp < 0xE000) cp = 0xFFFD;
                utf8(out, cp);
                break;
            }
            default: return false;
            }
        }
        return false;
    }
    bool num(double &out) {
        const char *s = p;
        if (p < end && *p == '-') p++;
        if (p >= end) return false;
        if (*p == '0') p++;
        else if (*p >= '1' && *p <= '9') while (p < end && isdigit((unsigned char) *p)) p++;
        else return false;
        if (p < end && *p == '.') {
            p++;
            if (p >= end || !isdigit((unsigned char) *p)) return false;
            while (p < end && isdigit((unsigned char) *p)) p++;
        }
        if (p < end && (*p == 'e' || *p == 'E')) {
            p++;
            if (p < end && (*p == '+' || *p == '-')) p++;
            if (p >= end || !isdigit((unsigned char) *p)) return false;
            while (p < end && isdigit((unsigned char) *p)) p++;
        }
        out = strtod(std::string(s, p).c_str(), nullptr);
        return true;
    }
    bool literal(const char *word) {
        size_t n = strlen(word);
        if ((size_t) (end - p) < n || memcmp(p, word, n) != 0) return false;
        p += n;
        return true;
    }
    bool value(JSON &v) {
        space();
        if (p >= end || ++depth > 64) return false;
        bool ok;
        switch (*p) {
        case '{': {
            v.kind = JSON::Object;
            p++;
            space();
            if (p < end && *p == '}') { p++; ok = true; break; }
            ok = false;
            while (true) {
                space();
                std::pair<std::string, JSON> m;
                if (!str(m.first)) break;
                space();
                if (p >= end || *p++ != ':') break;
                if (!value(m.second)) break;
                v.members.push_back(std::move(m));
                space();
                if (p < end && *p == ',') { p++; continue; }
                if (p < end && *p == '}') { p++; ok = true; }
                break;
            }
            break;
        }
        case '[': {
            v.kind = JSON::Array;
            p++;
            space();
            if (p < end && *p == ']') { p++; ok = true; break; }
            ok = false;
            while (true) {
                JSON item;
                if (!value(item)) break;
                v.items.push_back(std::move(item));
                space();
                if (p < end && *p == ',') { p++; continue; }
                if (p < end && *p == ']') { p++; ok = true; }
                break;
            }
            break;
        }
        case '"': v.kind = JSON::String; ok = str(v.string); break;
        case 't': v.kind = JSON::Bool; v.boolean = true; ok = literal("true"); break;
        case 'f': v.kind = JSON::Bool; ok = literal("false"); break;
        case 'n': v.kind = JSON::Null; ok = literal("null"); break;
        default: v.kind = JSON::Number; ok = num(v.number); break;
        }
        depth--;
        return ok;
    }
    // One value, nothing after it but white space.
    static bool parse(std::string_view text, JSON &out) {
        JSONReader r{text.data(), text.data() + text.size()};
        if (!r.value(out)) return false;
        r.space();
        return r.p == r.end;
    }
};

// presenced's escaping: `"`, `\` and control characters only (\b \f \n \r \t, others \u00XX).
void quote(std::string &out, std::string_view s) {
    static const char hex[] = "0123456789abcdef";
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) { out += "\\u00"; out += hex[c >> 4]; out += hex[c & 15]; }
            else out += (char) c;
        }
    }
    out += '"';
}

std::string presenceJSON(std::string_view user, bool online, std::string_view channel) {
    std::string s = "{\"type\":\"presence\",\"user_id\":";
    quote(s, user);
    s += online ? ",\"online\":true,\"channel\":" : ",\"online\":false,\"channel\":";
    quote(s, channel);
    s += '}';
    return s;
}

std::string errorJSON(std::string_view code, std::string_view message) {
    std::string s = "{\"type\":\"error\",\"code\":";
    quote(s, code);
    s += ",\"message\":";
    quote(s, message);
    s += '}';
    return s;
}

// ---------------------------------------------------------------------------------------------
// Ephemeral tokens (docs/protocol.md, "How a token is checked"): HS256 only, constant-time
// signature check, single-use jti.

bool base64url(std::string_view in, std::string &out) {
    static int8_t table[256];
    static bool ready = false;
    if (!ready) {
        memset(table, -1, sizeof table);
        const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (int i = 0; i < 64; i++) table[(unsigned char) alphabet[i]] = (int8_t) i;
        ready = true;
    }
    if (in.size() % 4 == 1) return false;
    uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : in) {
        if (table[c] < 0) return false;
        acc = acc << 6 | (uint32_t) table[c];
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += (char) (acc >> bits & 0xFF);
        }
    }
    return (acc & ((1u << bits) - 1)) == 0; // strict: unused trailing bits are zero
}

bool validChannel(std::string_view s) {
    if (s.empty() || s.size() > 128) return false;
    for (unsigned char c : s)
        if (!(isalnum(c) || c == '_' || c == '.' || c == ':' || c == '-')) return false;
    return true;
}

bool integer(const JSON *v, int64_t &out) {
    if (!v || v->kind != JSON::Number || v->number != std::trunc(v->number) || std::fabs(v->number) > 9007199254740992.0) return false;
    out = (int64_t) v->number;
    return true;
}

struct Claims {
    std::string sub, jti;
    int64_t exp = 0;
    std::unique_ptr<std::unordered_set<std::string>> channels; // null: every channel
};

// The claims, or the rejection reason (presenced's labels) in `reason`.
std::unique_ptr<Claims> verifyToken(const Config &cfg, std::string_view token, int64_t now, const char *&reason) {
    if (token.empty()) { reason = "missing"; return nullptr; }
    reason = "malformed";
    if (token.size() > maxTokenBytes) return nullptr;
    size_t d1 = token.find('.');
    if (d1 == std::string_view::npos) return nullptr;
    size_t d2 = token.find('.', d1 + 1);
    if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos || d1 == 0 || d2 == d1 + 1) return nullptr;
    std::string headerText, payloadText, signature;
    if (!base64url(token.substr(0, d1), headerText) || !base64url(token.substr(d1 + 1, d2 - d1 - 1), payloadText)
        || !base64url(token.substr(d2 + 1), signature))
        return nullptr;
    JSON header;
    if (!JSONReader::parse(headerText, header) || header.kind != JSON::Object) return nullptr;
    if (const JSON *typ = header.get("typ"); typ && (typ->kind != JSON::String || lower(typ->string) != "jwt")) return nullptr;
    if (header.get("crit")) return nullptr;
    const JSON *alg = header.get("alg");
    if (!alg || alg->kind != JSON::String || alg->string != "HS256") { reason = "algorithm"; return nullptr; }
    std::string_view signingInput = token.substr(0, d2);
    bool matched = false;
    for (auto &key : cfg.secrets) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int macLength = 0;
        HMAC(EVP_sha256(), key.data(), (int) key.size(), (const unsigned char *) signingInput.data(), signingInput.size(), mac, &macLength);
        if (signature.size() == macLength && CRYPTO_memcmp(signature.data(), mac, macLength) == 0) { matched = true; break; }
    }
    if (!matched) { reason = "signature"; return nullptr; }

    JSON payload;
    if (!JSONReader::parse(payloadText, payload) || payload.kind != JSON::Object) return nullptr;
    reason = "claims";
    const JSON *sub = payload.get("sub"), *jti = payload.get("jti");
    int64_t exp, iat;
    if (!sub || sub->kind != JSON::String || sub->string.empty() || !integer(payload.get("exp"), exp) || !integer(payload.get("iat"), iat)
        || !jti || jti->kind != JSON::String || jti->string.empty() || jti->string.size() > maxJTIBytes)
        return nullptr;
    int64_t nbf = 0;
    const JSON *nbfValue = payload.get("nbf");
    if (nbfValue && !integer(nbfValue, nbf)) return nullptr;
    for (const char *name : {"sid", "name"})
        if (const JSON *v = payload.get(name); v && v->kind != JSON::String) return nullptr;
    if (const JSON *role = payload.get("role");
        role && (role->kind != JSON::String || (role->string != "admin" && role->string != "member" && role->string != "child")))
        return nullptr;
    auto claims = std::make_unique<Claims>();
    if (const JSON *list = payload.get("channels")) {
        if (list->kind != JSON::Array) return nullptr;
        claims->channels = std::make_unique<std::unordered_set<std::string>>();
        for (auto &item : list->items) {
            if (item.kind != JSON::String || !validChannel(item.string)) return nullptr;
            claims->channels->insert(item.string);
        }
    }
    bool audienceOK = false;
    if (const JSON *aud = payload.get("aud")) {
        if (aud->kind == JSON::String) audienceOK = aud->string == cfg.audience;
        else if (aud->kind == JSON::Array)
            for (auto &a : aud->items)
                if (a.kind == JSON::String && a.string == cfg.audience) audienceOK = true;
    }
    if (!audienceOK) { reason = "audience"; return nullptr; }
    if (exp - iat <= 0 || exp - iat > maxTokenLifetime) { reason = "lifetime"; return nullptr; }
    if (iat > now + clockLeeway) { reason = "issued_in_future"; return nullptr; }
    if (nbfValue && nbf > now + clockLeeway) { reason = "not_yet_valid"; return nullptr; }
    if (exp < now - clockLeeway) { reason = "expired"; return nullptr; }
    claims->sub = sub->string;
    claims->jti = jti->string;
    claims->exp = exp;
    return claims;
}

// Remembers each jti until its token has expired (plus the leeway); swept like the Go peer's.
struct ReplayGuard {
    std::unordered_map<std::string, int64_t> seen;
    int64_t nextSweep = 0;
    size_t sweepAt = 1024;

    bool firstUse(const std::string &jti, int64_t exp, int64_t now) {
        if (now >= nextSweep || seen.size() >= sweepAt) {
            for (auto it = seen.begin(); it != seen.end();) it = it->second < now ? seen.erase(it) : std::next(it);
            nextSweep = now + 10;
            sweepAt = std::max<size_t>(1024, 2 * seen.size());
        }
        auto it = seen.find(jti);
        if (it != seen.end() && it->second >= now) return false;
        seen[jti] = exp + clockLeeway;
        return true;
    }
};

// ---------------------------------------------------------------------------------------------
// Message ids (UUIDv7: 48 bits of Unix ms, a 12-bit counter for order within a millisecond,
// random), clocks, the rate limit.

int64_t wallMillis() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t monoMillis() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct IDGenerator {
    int64_t last = 0;
    uint16_t counter = 0;
    uint64_t state = 0;

    IDGenerator() {
        RAND_bytes((unsigned char *) &state, sizeof state);
        state |= 1;
    }
    uint64_t random() { // xorshift64*, seeded once from the CSPRNG
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return state * 0x2545F4914F6CDD1DULL;
    }
    std::pair<std::string, int64_t> next() {
        int64_t ms = wallMillis();
        if (ms <= last) {
            ms = last;
            if (++counter > 0x0FFF) { ms++; counter = 0; }
        } else {
            counter = (uint16_t) (random() & 0x01FF);
        }
        last = ms;
        uint64_t hi = (uint64_t) ms << 16 | (0x7000 | counter), lo = (random() & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
        unsigned char b[16];
        for (int i = 0; i < 8; i++) { b[i] = (unsigned char) (hi >> (56 - 8 * i)); b[8 + i] = (unsigned char) (lo >> (56 - 8 * i)); }
        static const char hex[] = "0123456789abcdef";
        std::string out;
        out.reserve(36);
        for (int i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
            out += hex[b[i] >> 4];
            out += hex[b[i] & 15];
        }
        return {out, ms};
    }
};

std::string timestamp(int64_t ms) {
    time_t seconds = (time_t) (ms / 1000);
    tm t;
    gmtime_r(&seconds, &t);
    char buffer[32];
    snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour,
             t.tm_min, t.tm_sec, (int) (ms % 1000));
    return buffer;
}

struct RateLimiter {
    int64_t milliTokens = 0;
    int64_t last = 0; // ms

    bool allow(int64_t rate, int64_t now) {
        if (rate <= 0) return true;
        int64_t capacity = rate * 2000;
        if (now > last) {
            milliTokens = std::min(capacity, milliTokens + (now - last) * rate);
            last = now;
        }
        if (milliTokens < 1000) return false;
        milliTokens -= 1000;
        return true;
    }
};

// ---------------------------------------------------------------------------------------------
// Connections, channels and presence.

struct Room;

struct PerSocket {
    std::string user;
    std::unique_ptr<std::unordered_set<std::string>> allowed; // null: every channel
    std::vector<Room *> joined;
    std::vector<std::pair<Room *, uint64_t>> typing; // channel, generation of its auto-stop
    RateLimiter limiter;
    int strikes = 0;
    uint64_t serial = 0;
};

using WS = uWS::WebSocket<false, true, PerSocket>;

struct UserPresence {
    int conns = 0;
    bool inGrace = false; // last connection left; online:false pending
    uint64_t gen = 0;     // invalidates a pending grace timer
};

struct Room {
    std::string name;
    std::vector<WS *> conns;
    std::unordered_map<std::string, UserPresence> users;
};

// One-shot timers (grace ends, typing auto-stops) in a queue polled by one 50 ms uSockets timer.
struct Deadline {
    int64_t at;
    uint64_t seq;
    int kind; // 0 grace, 1 typing
    std::string channel, user;
    uint64_t gen;
    WS *ws;
    uint64_t serial;
    Room *room;
    bool operator>(const Deadline &o) const { return at != o.at ? at > o.at : seq > o.seq; }
};

Config cfg;
uWS::App *app;
ReplayGuard replay;
IDGenerator ids;
std::unordered_map<std::string, std::unique_ptr<Room>> rooms;
std::priority_queue<Deadline, std::vector<Deadline>, std::greater<Deadline>> deadlines;
std::unordered_map<WS *, uint64_t> typingSockets; // sockets with a typing auto-stop pending → serial
uint64_t deadlineSeq = 0, nextSerial = 1;
int64_t connections = 0;

void sendError(WS *ws, std::string_view code, std::string_view message) {
    ws->send(errorJSON(code, message), uWS::OpCode::TEXT);
}

// A frame for one member: closes a slow consumer (4008) once its backlog is over the cap, and
// skips droppable frames (typing) while it is over half of it.
void sendTo(WS *ws, std::string_view frame, bool droppable) {
    int64_t queued = ws->getBufferedAmount();
    if (queued > cfg.maxOutbound) {
        ws->end(4008, "slow consumer");
        return;
    }
    if (droppable && queued > cfg.maxOutbound / 2) return;
    ws->send(frame, uWS::OpCode::TEXT);
}

void announceOffline(Room *room, const std::string &user) {
    if (room->conns.empty()) {
        if (room->users.empty()) rooms.erase(room->name);
        return;
    }
    app->publish(room->name, presenceJSON(user, false, room->name), uWS::OpCode::TEXT);
}

void join(WS *ws, Room *room) {
    PerSocket *d = ws->getUserData();
    room->conns.push_back(ws);
    UserPresence &p = room->users[d->user];
    bool first = p.conns == 0 && !p.inGrace;
    p.conns++;
    p.inGrace = false;
    p.gen++;
    std::vector<const std::string *> online;
    online.reserve(room->users.size());
    for (auto &u : room->users) online.push_back(&u.first);
    std::sort(online.begin(), online.end(), [](auto a, auto b) { return *a < *b; });
    for (auto *u : online) ws->send(presenceJSON(*u, true, room->name), uWS::OpCode::TEXT);
    ws->subscribe(room->name); // ws->publish reaches every subscriber but ws, and only from a subscriber
    if (first) ws->publish(room->name, presenceJSON(d->user, true, room->name), uWS::OpCode::TEXT);
}

// Removes ws from room; the user's last connection starts the grace period.
void leave(WS *ws, Room *room, bool closing) {
    PerSocket *d = ws->getUserData();
    auto it = std::find(room->conns.begin(), room->conns.end(), ws);
    if (it != room->conns.end()) { *it = room->conns.back(); room->conns.pop_back(); }
    if (!closing) ws->unsubscribe(room->name);
    auto u = room->users.find(d->user);
    if (u == room->users.end() || u->second.conns == 0) return;
    if (--u->second.conns > 0) return;
    if (cfg.presenceGraceMs == 0) {
        std::string user = d->user;
        room->users.erase(u);
        announceOffline(room, user);
        return;
    }
    u->second.inGrace = true;
    u->second.gen++;
    deadlines.push(Deadline{monoMillis() + cfg.presenceGraceMs, deadlineSeq++, 0, room->name, d->user, u->second.gen, nullptr, 0, nullptr});
}

void graceEnded(const std::string &channel, const std::string &user, uint64_t gen) {
    auto r = rooms.find(channel);
    if (r == rooms.end()) return;
    Room *room = r->second.get();
    auto u = room->users.find(user);
    if (u != room->users.end() && u->second.inGrace && u->second.gen == gen) {
        room->users.erase(u);
        announceOffline(room, user);
    }
}

// typing goes to the connections of the other users in the channel (not the sender's own tabs).
void announceTyping(WS *ws, Room *room, bool typing) {
    PerSocket *d = ws->getUserData();
    std::string s = "{\"type\":\"typing\",\"user_id\":";
    quote(s, d->user);
    s += ",\"channel\":";
    quote(s, room->name);
    s += typing ? ",\"typing\":true}" : ",\"typing\":false}";
    std::vector<WS *> members = room->conns; // a slow-consumer close may change the list
    for (WS *o : members)
        if (o->getUserData()->user != d->user) sendTo(o, s, true);
}

void stopTyping(WS *ws, Room *room) {
    PerSocket *d = ws->getUserData();
    auto it = std::find_if(d->typing.begin(), d->typing.end(), [room](auto &t) { return t.first == room; });
    if (it == d->typing.end()) return;
    d->typing.erase(it);
    if (d->typing.empty()) typingSockets.erase(ws);
    announceTyping(ws, room, false);
}

void startTyping(WS *ws, Room *room) {
    PerSocket *d = ws->getUserData();
    uint64_t gen = deadlineSeq++;
    auto it = std::find_if(d->typing.begin(), d->typing.end(), [room](auto &t) { return t.first == room; });
    bool already = it != d->typing.end();
    if (already) it->second = gen; // still typing: only the auto-stop moves
    else d->typing.emplace_back(room, gen);
    typingSockets[ws] = d->serial;
    deadlines.push(Deadline{monoMillis() + typingTimeoutMs, deadlineSeq++, 1, {}, {}, gen, ws, d->serial, room});
    if (!already) announceTyping(ws, room, true);
}

void tick(us_timer_t *) {
    int64_t now = monoMillis();
    while (!deadlines.empty() && deadlines.top().at <= now) {
        Deadline t = deadlines.top();
        deadlines.pop();
        if (t.kind == 0) {
            graceEnded(t.channel, t.user, t.gen);
            continue;
        }
        auto s = typingSockets.find(t.ws);
        if (s == typingSockets.end() || s->second != t.serial) continue; // closed or no longer typing
        PerSocket *d = t.ws->getUserData();
        for (auto &entry : d->typing)
            if (entry.first == t.room && entry.second == t.gen) {
                stopTyping(t.ws, t.room);
                break;
            }
    }
}

// ---------------------------------------------------------------------------------------------
// Client messages (docs/protocol.md, "Client messages"), checked in presenced's order.

std::string echo(std::string_view s) {
    if (s.size() <= 64) return std::string(s);
    size_t end = 64;
    while (end > 0 && ((unsigned char) s[end] & 0xC0) == 0x80) end--;
    return std::string(s.substr(0, end)) + "…";
}

Room *findJoined(PerSocket *d, const std::string &channel) {
    for (Room *r : d->joined)
        if (r->name == channel) return r;
    return nullptr;
}

void handle(WS *ws, std::string_view data) {
    PerSocket *d = ws->getUserData();
    JSON m;
    if (!JSONReader::parse(data, m)) return sendError(ws, "bad_json", "invalid JSON");
    if (m.kind != JSON::Object) return sendError(ws, "bad_json", "expected a JSON object");
    const JSON *type = m.get("type");
    if (!type || type->kind == JSON::Null) return sendError(ws, "bad_json", "missing field 'type'");
    if (type->kind != JSON::String) return sendError(ws, "bad_json", "'type' must be a string");
    const std::string &t = type->string;
    bool allowChannel = false, allowContent = false, allowTyping = false;
    if (t == "join" || t == "leave") allowChannel = true;
    else if (t == "message") allowChannel = allowContent = true;
    else if (t == "typing") allowChannel = allowTyping = true;
    else if (t != "ping") return sendError(ws, "unknown_type", "unknown type '" + echo(t) + "'");
    for (auto &member : m.members)
        if (member.first != "type" && member.first != "channel" && member.first != "content" && member.first != "typing")
            return sendError(ws, "bad_json", "unknown field '" + echo(member.first) + "'");
    const JSON *channelValue = m.get("channel"), *content = m.get("content"), *typing = m.get("typing");
    if ((channelValue && channelValue->kind != JSON::Null && channelValue->kind != JSON::String)
        || (content && content->kind != JSON::Null && content->kind != JSON::String)
        || (typing && typing->kind != JSON::Null && typing->kind != JSON::Bool))
        return sendError(ws, "bad_json", "a field has the wrong JSON type");
    struct { const char *name; bool present, allowed; } fields[] = {
        {"channel", channelValue && channelValue->kind != JSON::Null, allowChannel},
        {"content", content && content->kind != JSON::Null, allowContent},
        {"typing", typing && typing->kind != JSON::Null, allowTyping}};
    for (auto &f : fields) {
        if (!f.present && f.allowed) return sendError(ws, "bad_json", std::string("missing field '") + f.name + "'");
        if (f.present && !f.allowed) return sendError(ws, "bad_json", std::string("unexpected field '") + f.name + "' for type '" + t + "'");
    }
    if (t == "ping") { ws->send("{\"type\":\"pong\"}", uWS::OpCode::TEXT); return; }
    const std::string &channel = channelValue->string;
    if (!validChannel(channel)) return sendError(ws, "invalid_channel", "channel must be 1-128 bytes of [A-Za-z0-9_.:-]");
    if (t == "message") {
        if (content->string.empty()) return sendError(ws, "bad_json", "content is empty");
        if (content->string.size() > maxContentBytes) return sendError(ws, "too_large", "content is over 4096 bytes");
    }
    Room *room = findJoined(d, channel);
    if (t == "join") {
        if (d->allowed && !d->allowed->count(channel)) return sendError(ws, "forbidden_channel", "the token does not allow this channel");
        if (room) { ws->send(presenceJSON(d->user, true, channel), uWS::OpCode::TEXT); return; } // confirm again, count once
        if (d->joined.size() >= maxChannelsPerConn) return sendError(ws, "too_large", "at most 64 channels per connection");
        auto &slot = rooms[channel];
        if (!slot) {
            slot = std::make_unique<Room>();
            slot->name = channel;
        }
        d->joined.push_back(slot.get());
        join(ws, slot.get());
    } else if (t == "leave") {
        if (!room) return sendError(ws, "not_joined", "not a member of this channel");
        stopTyping(ws, room);
        d->joined.erase(std::find(d->joined.begin(), d->joined.end(), room));
        leave(ws, room, false);
    } else if (t == "message") {
        if (!room) return sendError(ws, "not_joined", "join the channel before sending to it");
        auto [id, ms] = ids.next();
        std::string s = "{\"type\":\"message\",\"id\":\"" + id + "\",\"sender\":";
        quote(s, d->user);
        s += ",\"content\":";
        quote(s, content->string);
        s += ",\"channel\":";
        quote(s, channel);
        s += ",\"timestamp\":\"" + timestamp(ms) + "\"}";
        app->publish(channel, s, uWS::OpCode::TEXT); // encoded once, to every member, the sender included
    } else { // typing
        if (!room) return sendError(ws, "not_joined", "join the channel before typing in it");
        if (typing->boolean) startTyping(ws, room);
        else stopTyping(ws, room);
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP: /ws upgrade, /healthz, /readyz.

std::string requestID(uWS::HttpRequest *req) {
    std::string_view given = req->getHeader("x-request-id");
    if (given.size() > 0 && given.size() <= 128) {
        bool sane = true;
        for (unsigned char c : given)
            if (c <= 0x20 || c >= 0x7F || c == '"' || c == '\\') sane = false;
        if (sane) return std::string(given);
    }
    unsigned char b[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = ids.random();
        memcpy(b + i, &r, 8);
    }
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : b) { out += hex[c >> 4]; out += hex[c & 15]; }
    return out;
}

void writeError(uWS::HttpResponse<false> *res, const std::string &id, const char *status, std::string_view code, std::string_view message,
                const char *extraName = nullptr, const char *extraValue = nullptr) {
    std::string body = "{\"error\":";
    quote(body, message);
    body += ",\"code\":";
    quote(body, code);
    body += '}';
    res->writeStatus(status);
    res->writeHeader("X-Request-ID", id);
    res->writeHeader("Content-Type", "application/json");
    res->writeHeader("Cache-Control", "no-store");
    if (extraName) res->writeHeader(extraName, extraValue);
    res->end(body, true); // Connection: close for refusals
}

bool headerHasToken(uWS::HttpRequest *req, std::string_view name, std::string_view token) {
    bool found = false;
    for (auto [key, value] : *req) {
        if (key != name) continue;
        size_t start = 0;
        while (start <= value.size()) {
            size_t end = value.find(',', start);
            if (end == std::string_view::npos) end = value.size();
            if (lower(trim(value.substr(start, end - start))) == token) found = true;
            start = end + 1;
        }
    }
    return found;
}

// The handshake checks in presenced's order; `context` is null when the request has no valid
// Sec-WebSocket-Key (uWS passed it on to the plain GET route).
void serveWS(uWS::HttpResponse<false> *res, uWS::HttpRequest *req, us_socket_context_t *context) {
    std::string id = requestID(req);
    std::string method(req->getCaseSensitiveMethod());
    if (method != "GET") return writeError(res, id, "400 Bad Request", "bad_upgrade", "WebSocket upgrade requires method GET, got " + method);
    if (!headerHasToken(req, "upgrade", "websocket")) return writeError(res, id, "400 Bad Request", "bad_upgrade", "missing Upgrade: websocket");
    if (!headerHasToken(req, "connection", "upgrade")) return writeError(res, id, "400 Bad Request", "bad_upgrade", "missing Connection: Upgrade");
    int versions = 0;
    for (auto [key, value] : *req) if (key == "sec-websocket-version") versions++;
    if (versions != 1 || req->getHeader("sec-websocket-version") != "13")
        return writeError(res, id, "426 Upgrade Required", "upgrade_required", "unsupported WebSocket version; only 13 is supported",
                          "Sec-WebSocket-Version", "13");
    if (!context) return writeError(res, id, "400 Bad Request", "bad_upgrade", "missing or invalid Sec-WebSocket-Key");
    if (!originAllowed(cfg.origins, req->getHeader("origin"))) return writeError(res, id, "403 Forbidden", "forbidden_origin", "origin not allowed");
    int64_t now = wallMillis() / 1000;
    const char *reason = "";
    auto claims = verifyToken(cfg, req->getQuery("token"), now, reason);
    if (!claims) return writeError(res, id, "401 Unauthorized", "invalid_token", std::string("token ") + reason);
    // Capacity before the token is spent: a refused client may retry with the same token.
    if (connections + 1 > cfg.maxConnections) return writeError(res, id, "503 Service Unavailable", "at_capacity", "server at capacity");
    if (!replay.firstUse(claims->jti, claims->exp, now)) return writeError(res, id, "401 Unauthorized", "invalid_token", "token replayed");
    connections++;
    PerSocket data;
    data.user = std::move(claims->sub);
    data.allowed = std::move(claims->channels);
    data.limiter = RateLimiter{cfg.messageRate * 2000, monoMillis()};
    data.serial = nextSerial++;
    res->writeStatus("101 Switching Protocols");
    res->writeHeader("X-Request-ID", id);
    res->upgrade<PerSocket>(std::move(data), req->getHeader("sec-websocket-key"), {}, {}, context);
}

void plain(uWS::HttpResponse<false> *res, uWS::HttpRequest *req, int status) {
    std::string id = requestID(req);
    if (status == 404) return writeError(res, id, "404 Not Found", "not_found", "no such endpoint");
    if (req->getCaseSensitiveMethod() != "GET") return writeError(res, id, "405 Method Not Allowed", "method_not_allowed", "use GET", "Allow", "GET");
    res->writeHeader("X-Request-ID", id);
    res->writeHeader("Content-Type", "application/json");
    res->writeHeader("Cache-Control", "no-store");
    res->end(req->getUrl() == "/healthz" ? "{\"status\":\"ok\"}" : "{\"status\":\"ready\"}");
}

} // namespace

int main() {
    cfg = loadConfig();
    uWS::App server;
    app = &server;
    // uWS pings a connection that has been quiet for about idleTimeout and closes one quiet for
    // longer; presenced pings every PING_INTERVAL and allows two missed pongs.
    int64_t idle = std::clamp<int64_t>(2 * cfg.pingIntervalMs / 1000, 8, 960);
    server.ws<PerSocket>("/ws", {
        .compression = uWS::DISABLED, // presenced does not compress
        // uWS drops a connection whose message is over maxPayloadLength without a close frame;
        // presenced closes with 1009, so the limit is checked in the message handler instead.
        .maxPayloadLength = (unsigned int) std::min<int64_t>(4 * cfg.maxMessageBytes, 1 << 30),
        .idleTimeout = (unsigned short) idle,
        .maxBackpressure = (unsigned int) (2 * cfg.maxOutbound), // our own check closes with 4008 at maxOutbound
        .closeOnBackpressureLimit = false,
        .resetIdleTimeoutOnSend = false,
        .sendPingsAutomatically = true,
        .upgrade = [](auto *res, auto *req, auto *context) { serveWS(res, req, context); },
        .open = [](WS *) {},
        .message = [](WS *ws, std::string_view data, uWS::OpCode op) {
            PerSocket *d = ws->getUserData();
            if ((int64_t) data.size() > cfg.maxMessageBytes) { ws->end(1009, "message too big"); return; }
            if (!d->limiter.allow(cfg.messageRate, monoMillis())) {
                d->strikes++;
                int64_t limit = std::max<int64_t>(cfg.messageRate, 1);
                if (d->strikes > 4 * limit) { ws->end(1008, "message rate"); return; }
                return sendError(ws, "rate_limited", "more than " + std::to_string(cfg.messageRate) + " messages per second");
            }
            d->strikes = 0;
            if (op != uWS::OpCode::TEXT) return sendError(ws, "bad_json", "binary frames are not accepted");
            handle(ws, data); // uWS has checked the text's UTF-8 (1007 otherwise)
        },
        .close = [](WS *ws, int, std::string_view) {
            PerSocket *d = ws->getUserData();
            while (!d->typing.empty()) stopTyping(ws, d->typing.back().first);
            typingSockets.erase(ws);
            for (Room *room : d->joined) leave(ws, room, true);
            d->joined.clear();
            connections--;
        },
    });
    server.any("/ws", [](auto *res, auto *req) { serveWS(res, req, nullptr); });
    server.get("/healthz", [](auto *res, auto *req) { plain(res, req, 200); });
    server.get("/readyz", [](auto *res, auto *req) { plain(res, req, 200); });
    server.any("/healthz", [](auto *res, auto *req) { plain(res, req, 405); });
    server.any("/readyz", [](auto *res, auto *req) { plain(res, req, 405); });
    server.any("/*", [](auto *res, auto *req) { plain(res, req, 404); });

    us_timer_t *timer = us_create_timer((us_loop_t *) uWS::Loop::get(), 0, 0);
    us_timer_set(timer, tick, 50, 50);

    server.listen(cfg.bind, cfg.port, [](us_listen_socket_t *socket) {
        if (!socket) {
            fprintf(stderr, "peer-uws: cannot listen on %s:%d\n", cfg.bind.c_str(), cfg.port);
            exit(1);
        }
        printf("{\"level\":\"info\",\"msg\":\"peer-uws listening\",\"addr\":\"%s:%d\",\"message_rate\":%lld}\n", cfg.bind.c_str(), cfg.port,
               (long long) cfg.messageRate);
        fflush(stdout);
    });
    server.run();
    return 0;
}
