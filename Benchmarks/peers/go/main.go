// Command peer-go is the Go peer of presenced for the benchmark comparison (issue 4): the same
// external protocol (docs/protocol.md: GET /ws?token=JWT, HS256 single-use tokens, join/leave/
// message/typing/ping, presence snapshots, first/last-connection announcements), written the
// way a Go team would write it with gorilla/websocket:
//
//   - one reader goroutine and one writer goroutine per connection (the gorilla chat example's
//     readPump/writePump); the writer is fed by a mutex-guarded slice queue bounded in bytes
//     (MAX_OUTBOUND_BYTES, as presenced) and woken through a 1-slot channel, the way Go servers
//     of this kind (Centrifuge) queue, rather than a fixed-size channel whose buffer is allocated
//     up front for every connection and trips long before 1 MiB of backlog;
//   - channel membership and presence counts in maps guarded by one sync.RWMutex: fan-out of
//     chat messages takes the read lock (so readers fan out in parallel), joins and leaves the
//     write lock;
//   - every broadcast is encoded once (encoding/json) into a websocket.PreparedMessage whose
//     frame is built once and written to every member.
//
// Build (GOPATH mode, gorilla from Debian's golang-github-gorilla-websocket-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/peer-go Benchmarks/peers/go/main.go
//
// Run: WS_TOKEN_SECRET=<at least 32 bytes> PORT=8082 /tmp/peer-go
package main

import (
	"bytes"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// ---------------------------------------------------------------------------------------------
// Configuration (docs/operations.md, "Configuration"): the subset that matters to the realtime
// path.

type config struct {
	bind            string
	port            string
	secrets         [][]byte
	audience        string
	messageRate     int
	presenceGrace   time.Duration
	pingInterval    time.Duration
	maxMessageBytes int64
	maxOutbound     int64
	maxConnections  int64
	origins         *originPolicy
}

const (
	maxTokenLifetime   = 300 // seconds, exp - iat
	clockLeeway        = 5   // seconds on exp, nbf and a future iat
	maxTokenBytes      = 4096
	maxJTIBytes        = 128
	maxContentBytes    = 4096
	maxChannelsPerConn = 64
	typingTimeout      = 5 * time.Second
)

func fail(variable, problem string) {
	fmt.Fprintf(os.Stderr, "peer-go: invalid %s: %s\n", variable, problem)
	os.Exit(78) // EX_CONFIG, like presenced
}

func envInt(name string, def, min, max int64) int64 {
	v, ok := os.LookupEnv(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min || n > max {
		fail(name, fmt.Sprintf("%q is not a whole number in %d...%d", v, min, max))
	}
	return n
}

// envDuration reads `500ms`, `30s`, `2m`, `1h` or plain seconds.
func envDuration(name string, def, min time.Duration) time.Duration {
	v, ok := os.LookupEnv(name)
	if !ok {
		return def
	}
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	number, unit := v, time.Second
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			number, unit = strings.TrimSuffix(v, u.suffix), u.unit
			break
		}
	}
	n, err := strconv.ParseInt(number, 10, 64)
	if err != nil || n < 0 {
		fail(name, fmt.Sprintf("%q is not a duration like 500ms, 30s, 2m or plain seconds", v))
	}
	d := time.Duration(n) * unit
	if d < min {
		fail(name, fmt.Sprintf("must be at least %v", min))
	}
	return d
}

func loadConfig() *config {
	c := &config{bind: "127.0.0.1", port: "8082", audience: "presenced"}
	if v := os.Getenv("BIND"); v != "" {
		c.bind = v
	}
	if v, ok := os.LookupEnv("PORT"); ok {
		if p, err := strconv.ParseUint(v, 10, 16); err != nil {
			fail("PORT", fmt.Sprintf("%q is not a port number (0–65535)", v))
		} else {
			c.port = strconv.FormatUint(p, 10)
		}
	}
	secret := os.Getenv("WS_TOKEN_SECRET")
	if secret == "" {
		fail("WS_TOKEN_SECRET", "required")
	}
	for _, name := range []string{"WS_TOKEN_SECRET", "WS_TOKEN_SECRET_PREVIOUS"} {
		if s := os.Getenv(name); s != "" {
			if len(s) < 32 {
				fail(name, "must be at least 32 bytes")
			}
			c.secrets = append(c.secrets, []byte(s))
		}
	}
	if v, ok := os.LookupEnv("WS_TOKEN_AUDIENCE"); ok {
		if v == "" {
			fail("WS_TOKEN_AUDIENCE", "must not be empty")
		}
		c.audience = v
	}
	c.messageRate = int(envInt("MESSAGE_RATE", 20, 0, 1_000_000))
	c.presenceGrace = envDuration("PRESENCE_GRACE", 2*time.Second, 0)
	c.pingInterval = envDuration("PING_INTERVAL", 25*time.Second, 100*time.Millisecond)
	c.maxMessageBytes = envInt("MAX_MESSAGE_BYTES", 65536, 125, 1<<30)
	c.maxOutbound = envInt("MAX_OUTBOUND_BYTES", 1<<20, 4096, 1<<30)
	c.maxConnections = envInt("MAX_CONNECTIONS", 100_000, 1, 100_000_000)
	origins := "https://casa.devarno.cloud,http://localhost:3000"
	if v, ok := os.LookupEnv("ALLOWED_ORIGINS"); ok {
		origins = v
	}
	c.origins = newOriginPolicy(strings.Split(origins, ","))
	return c
}

// originPolicy is the ALLOWED_ORIGINS allow-list: exact origins, scheme://*.domain, or *.
type originPolicy struct {
	all       bool
	exact     map[string]bool
	wildcards [][2]string // scheme with "://", ".domain"
}

func newOriginPolicy(entries []string) *originPolicy {
	p := &originPolicy{exact: map[string]bool{}}
	for _, raw := range entries {
		e := strings.ToLower(strings.TrimSpace(raw))
		switch {
		case e == "":
		case e == "*":
			p.all = true
		default:
			parts := strings.SplitN(e, "*", 2)
			if len(parts) == 2 && strings.HasSuffix(parts[0], "://") && strings.HasPrefix(parts[1], ".") && len(parts[1]) > 1 {
				p.wildcards = append(p.wildcards, [2]string{parts[0], parts[1]})
			} else {
				p.exact[strings.TrimSuffix(e, "/")] = true
			}
		}
	}
	return p
}

func (p *originPolicy) allows(r *http.Request) bool {
	values := r.Header.Values("Origin")
	if len(values) == 0 || p.all {
		return true // no Origin: not a browser
	}
	o := strings.ToLower(values[0])
	if p.exact[o] {
		return true
	}
	for _, w := range p.wildcards {
		if !strings.HasPrefix(o, w[0]) {
			continue
		}
		host := o[len(w[0]):]
		hostOnly := strings.SplitN(host, ":", 2)[0]
		if strings.HasSuffix(hostOnly, w[1]) && len(hostOnly) > len(w[1]) && !strings.Contains(host, "/") {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------------------------
// Ephemeral tokens (docs/protocol.md, "How a token is checked"): HS256 only, constant-time
// signature check, single-use jti.

type claims struct {
	sub      string
	jti      string
	exp      int64
	channels map[string]bool // nil: every channel
}

var b64 = base64.RawURLEncoding.Strict()

// verifyToken returns the claims, or the rejection reason (presenced's labels).
func verifyToken(cfg *config, token string, now int64) (*claims, string) {
	if token == "" {
		return nil, "missing"
	}
	if len(token) > maxTokenBytes {
		return nil, "malformed"
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return nil, "malformed"
	}
	headerJSON, err1 := b64.DecodeString(parts[0])
	payloadJSON, err2 := b64.DecodeString(parts[1])
	signature, err3 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, "malformed"
	}
	var header map[string]interface{}
	if json.Unmarshal(headerJSON, &header) != nil || header == nil {
		return nil, "malformed"
	}
	if typ, ok := header["typ"]; ok {
		if s, isString := typ.(string); !isString || strings.ToLower(s) != "jwt" {
			return nil, "malformed"
		}
	}
	if _, ok := header["crit"]; ok {
		return nil, "malformed"
	}
	if alg, _ := header["alg"].(string); alg != "HS256" {
		return nil, "algorithm"
	}
	signingInput := token[:len(parts[0])+1+len(parts[1])]
	matched := false
	for _, key := range cfg.secrets {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(signingInput))
		if hmac.Equal(signature, mac.Sum(nil)) { // constant time
			matched = true
			break
		}
	}
	if !matched {
		return nil, "signature"
	}

	var payload map[string]interface{}
	if json.Unmarshal(payloadJSON, &payload) != nil || payload == nil {
		return nil, "malformed"
	}
	sub, ok1 := payload["sub"].(string)
	exp, ok2 := integer(payload["exp"])
	iat, ok3 := integer(payload["iat"])
	jti, ok4 := payload["jti"].(string)
	if !ok1 || sub == "" || !ok2 || !ok3 || !ok4 || jti == "" || len(jti) > maxJTIBytes {
		return nil, "claims"
	}
	var nbf *int64
	if v, present := payload["nbf"]; present {
		n, ok := integer(v)
		if !ok {
			return nil, "claims"
		}
		nbf = &n
	}
	for _, name := range []string{"sid", "name"} {
		if v, present := payload[name]; present {
			if _, ok := v.(string); !ok {
				return nil, "claims"
			}
		}
	}
	if v, present := payload["role"]; present {
		if role, _ := v.(string); role != "admin" && role != "member" && role != "child" {
			return nil, "claims"
		}
	}
	var channels map[string]bool
	if v, present := payload["channels"]; present {
		list, ok := v.([]interface{})
		if !ok {
			return nil, "claims"
		}
		channels = make(map[string]bool, len(list))
		for _, item := range list {
			id, ok := item.(string)
			if !ok || !validChannel(id) {
				return nil, "claims"
			}
			channels[id] = true
		}
	}
	audienceOK := false
	switch aud := payload["aud"].(type) {
	case string:
		audienceOK = aud == cfg.audience
	case []interface{}:
		for _, a := range aud {
			if s, ok := a.(string); ok && s == cfg.audience {
				audienceOK = true
			}
		}
	}
	if !audienceOK {
		return nil, "audience"
	}
	if lifetime := exp - iat; lifetime <= 0 || lifetime > maxTokenLifetime {
		return nil, "lifetime"
	}
	if iat > now+clockLeeway {
		return nil, "issued_in_future"
	}
	if nbf != nil && *nbf > now+clockLeeway {
		return nil, "not_yet_valid"
	}
	if exp < now-clockLeeway {
		return nil, "expired"
	}
	return &claims{sub: sub, jti: jti, exp: exp, channels: channels}, ""
}

// integer accepts a JSON number with an integral value of magnitude at most 2^53.
func integer(v interface{}) (int64, bool) {
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// replayGuard remembers each jti until its token has expired (plus the leeway).
type replayGuard struct {
	mu        sync.Mutex
	seen      map[string]int64
	nextSweep int64
	sweepAt   int // also sweep once the map has doubled since the last sweep
}

func (g *replayGuard) firstUse(jti string, exp, now int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now >= g.nextSweep || len(g.seen) >= g.sweepAt {
		for k, until := range g.seen {
			if until < now {
				delete(g.seen, k)
			}
		}
		g.nextSweep = now + 10
		g.sweepAt = 2 * len(g.seen)
		if g.sweepAt < 1024 {
			g.sweepAt = 1024
		}
	}
	if until, ok := g.seen[jti]; ok && until >= now {
		return false
	}
	g.seen[jti] = exp + clockLeeway
	return true
}

// ---------------------------------------------------------------------------------------------
// Wire messages (docs/protocol.md, "Server messages"). Struct field order is presenced's key order.

type clientMessage struct {
	Type    *string `json:"type"`
	Channel *string `json:"channel"`
	Content *string `json:"content"`
	Typing  *bool   `json:"typing"`
}

type chatOut struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	Sender    string `json:"sender"`
	Content   string `json:"content"`
	Channel   string `json:"channel"`
	Timestamp string `json:"timestamp"`
}

type presenceOut struct {
	Type    string `json:"type"`
	UserID  string `json:"user_id"`
	Online  bool   `json:"online"`
	Channel string `json:"channel"`
}

type typingOut struct {
	Type    string `json:"type"`
	UserID  string `json:"user_id"`
	Channel string `json:"channel"`
	Typing  bool   `json:"typing"`
}

type errorOut struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// encode is encoding/json without HTML escaping (presenced writes '<', '>' and '&' as they are).
func encode(v interface{}) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

// frame is one server message, encoded once. A broadcast carries a PreparedMessage (gorilla
// builds its WebSocket frame once and every recipient writes those same bytes); a message for one
// connection only (snapshot entry, error) carries the JSON as is.
type frame struct {
	pm   *websocket.PreparedMessage
	data []byte
	size int64
}

func single(data []byte) *frame { return &frame{data: data, size: int64(len(data))} }

func prepare(data []byte) *frame {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, data)
	if err != nil {
		panic(err)
	}
	return &frame{pm: pm, size: int64(len(data))}
}

var pongMessage = prepare([]byte(`{"type":"pong"}`))

func presenceMessage(user string, online bool, channel string) []byte {
	return encode(presenceOut{Type: "presence", UserID: user, Online: online, Channel: channel})
}

// validChannel: 1–128 bytes of [A-Za-z0-9_.:-].
func validChannel(s string) bool {
	if len(s) < 1 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// echo cuts client input to at most 64 bytes on a character boundary, for error messages.
func echo(s string) string {
	if len(s) <= 64 {
		return s
	}
	end := 64
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + "…"
}

type protocolError struct{ code, message string }

func bad(message string) *protocolError { return &protocolError{"bad_json", message} }

// parseClientMessage decodes one message into the struct; only a refused message takes the slow
// path (a generic decode) that names what is wrong, in presenced's order of checks.
func parseClientMessage(data []byte) (*clientMessage, *protocolError) {
	var m clientMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || dec.Decode(&struct{}{}) != io.EOF { // one object, nothing after it
		return nil, classify(data)
	}
	if m.Type == nil {
		return nil, bad("missing field 'type'")
	}
	var allowChannel, allowContent, allowTyping bool
	switch *m.Type {
	case "join", "leave":
		allowChannel = true
	case "message":
		allowChannel, allowContent = true, true
	case "typing":
		allowChannel, allowTyping = true, true
	case "ping":
	default:
		return nil, &protocolError{"unknown_type", "unknown type '" + echo(*m.Type) + "'"}
	}
	for _, f := range []struct {
		name    string
		present bool
		allowed bool
	}{{"channel", m.Channel != nil, allowChannel}, {"content", m.Content != nil, allowContent}, {"typing", m.Typing != nil, allowTyping}} {
		if !f.present && f.allowed {
			return nil, bad("missing field '" + f.name + "'")
		}
		if f.present && !f.allowed {
			return nil, bad("unexpected field '" + f.name + "' for type '" + *m.Type + "'")
		}
	}
	if *m.Type == "ping" {
		return &m, nil
	}
	if !validChannel(*m.Channel) {
		return nil, &protocolError{"invalid_channel", "channel must be 1-128 bytes of [A-Za-z0-9_.:-]"}
	}
	if *m.Type == "message" {
		if len(*m.Content) == 0 {
			return nil, bad("content is empty")
		}
		if len(*m.Content) > maxContentBytes {
			return nil, &protocolError{"too_large", fmt.Sprintf("content is over %d bytes", maxContentBytes)}
		}
	}
	return &m, nil
}

// classify explains why a message did not decode into clientMessage.
func classify(data []byte) *protocolError {
	var obj map[string]interface{}
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		if err == nil {
			return bad("expected a JSON object")
		}
		return bad("invalid JSON: " + err.Error())
	}
	t, present := obj["type"]
	if !present {
		return bad("missing field 'type'")
	}
	typ, ok := t.(string)
	if !ok {
		return bad("'type' must be a string")
	}
	switch typ {
	case "join", "leave", "message", "typing", "ping":
	default:
		return &protocolError{"unknown_type", "unknown type '" + echo(typ) + "'"}
	}
	for k := range obj {
		if k != "type" && k != "channel" && k != "content" && k != "typing" {
			return bad("unknown field '" + echo(k) + "'")
		}
	}
	return bad("a field has the wrong JSON type")
}

// ---------------------------------------------------------------------------------------------
// Message ids: UUIDv7 (48 bits of Unix ms, a 12-bit counter for order within a millisecond, random).

type idGenerator struct {
	mu      sync.Mutex
	last    int64
	counter uint16
	rng     *rand.Rand
}

func newIDGenerator() *idGenerator {
	var seed [8]byte
	crand.Read(seed[:])
	return &idGenerator{rng: rand.New(rand.NewSource(int64(binary.LittleEndian.Uint64(seed[:]))))}
}

func (g *idGenerator) next() (string, int64) {
	g.mu.Lock()
	ms := time.Now().UnixMilli()
	if ms <= g.last {
		ms = g.last
		g.counter++
		if g.counter > 0x0FFF {
			ms++
			g.counter = 0
		}
	} else {
		g.counter = uint16(g.rng.Uint32()) & 0x01FF
	}
	g.last = ms
	counter, random := g.counter, g.rng.Uint64()
	g.mu.Unlock()

	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(ms)<<16|uint64(0x7000|counter))
	binary.BigEndian.PutUint64(b[8:16], random&0x3FFFFFFFFFFFFFFF|0x8000000000000000)
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:]), ms
}

// ---------------------------------------------------------------------------------------------
// Rate limit: a token bucket of rate/s with a burst of twice that (0 = no limit).

type rateLimiter struct {
	milliTokens int64
	last        int64 // ms
}

func (l *rateLimiter) allow(rate int, now int64) bool {
	if rate <= 0 {
		return true
	}
	capacity := int64(rate) * 2000
	if now > l.last {
		l.milliTokens += (now - l.last) * int64(rate)
		if l.milliTokens > capacity {
			l.milliTokens = capacity
		}
		l.last = now
	}
	if l.milliTokens < 1000 {
		return false
	}
	l.milliTokens -= 1000
	return true
}

var processStart = time.Now()

func monoMillis() int64 { return int64(time.Since(processStart) / time.Millisecond) }

// ---------------------------------------------------------------------------------------------
// The hub: channels, their member connections, and presence per user.

type userPresence struct {
	conns   int
	inGrace bool   // last connection left; online:false pending
	gen     uint64 // invalidates a pending grace timer
}

type room struct {
	conns map[*client]bool
	users map[string]*userPresence
}

type hub struct {
	cfg   *config
	mu    sync.RWMutex
	rooms map[string]*room
}

// join adds c to channel; the joiner gets a presence snapshot (itself included), the others hear
// of the user only on its first connection there.
func (h *hub) join(c *client, channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[channel]
	if r == nil {
		r = &room{conns: map[*client]bool{}, users: map[string]*userPresence{}}
		h.rooms[channel] = r
	}
	r.conns[c] = true
	p := r.users[c.user]
	if p == nil {
		p = &userPresence{}
		r.users[c.user] = p
	}
	first := p.conns == 0 && !p.inGrace
	p.conns++
	p.inGrace = false
	p.gen++

	online := make([]string, 0, len(r.users))
	for u := range r.users {
		online = append(online, u)
	}
	sort.Strings(online)
	for _, u := range online {
		c.enqueue(single(presenceMessage(u, true, channel)), false)
	}
	if first {
		pm := prepare(presenceMessage(c.user, true, channel))
		for o := range r.conns {
			if o != c {
				o.enqueue(pm, false)
			}
		}
	}
}

// leave removes c from channel; the user's last connection starts the grace period.
func (h *hub) leave(c *client, channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[channel]
	if r == nil {
		return
	}
	delete(r.conns, c)
	p := r.users[c.user]
	if p == nil || p.conns == 0 {
		return
	}
	p.conns--
	if p.conns > 0 {
		return
	}
	if h.cfg.presenceGrace == 0 {
		delete(r.users, c.user)
		h.announceOfflineLocked(r, channel, c.user)
		return
	}
	p.inGrace = true
	p.gen++
	gen, user := p.gen, c.user
	time.AfterFunc(h.cfg.presenceGrace, func() { h.graceEnded(channel, user, gen) })
}

func (h *hub) graceEnded(channel, user string, gen uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[channel]
	if r == nil {
		return
	}
	if p := r.users[user]; p != nil && p.inGrace && p.gen == gen {
		delete(r.users, user)
		h.announceOfflineLocked(r, channel, user)
	}
}

func (h *hub) announceOfflineLocked(r *room, channel, user string) {
	if len(r.conns) == 0 {
		if len(r.users) == 0 {
			delete(h.rooms, channel)
		}
		return
	}
	pm := prepare(presenceMessage(user, false, channel))
	for o := range r.conns {
		o.enqueue(pm, false)
	}
}

// broadcast sends one prepared message to every member of channel, except exceptUser's
// connections when exceptUser is not empty.
func (h *hub) broadcast(channel string, f *frame, exceptUser string, droppable bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r := h.rooms[channel]
	if r == nil {
		return
	}
	for o := range r.conns {
		if exceptUser != "" && o.user == exceptUser {
			continue
		}
		o.enqueue(f, droppable)
	}
}

// ---------------------------------------------------------------------------------------------
// Connections.

type typingEntry struct{ timer *time.Timer }

type client struct {
	hub     *hub
	server  *server
	conn    *websocket.Conn
	user    string
	allowed map[string]bool
	done    chan struct{}

	// The send queue: frames waiting for writePump, bounded in bytes like presenced's
	// (MAX_OUTBOUND_BYTES), so memory follows the backlog instead of a fixed channel buffer.
	qmu     sync.Mutex
	queue   []*frame
	queued  int64         // bytes in queue and being written
	closing bool          // a slow-consumer close began: nothing more is queued
	wake    chan struct{} // capacity 1: "the queue is not empty"

	// Owned by the reader goroutine.
	joined  map[string]bool
	limiter rateLimiter
	strikes int

	mu     sync.Mutex // guards typing (the reader and the auto-stop timers)
	typing map[string]*typingEntry
}

// enqueue queues a message without blocking; a connection whose queue is over the cap is closed
// as a slow consumer (4008), and droppable messages (typing) are skipped while it is over half.
func (c *client) enqueue(f *frame, droppable bool) {
	max := c.hub.cfg.maxOutbound
	c.qmu.Lock()
	switch {
	case c.closing, droppable && c.queued > max/2:
		c.qmu.Unlock()
		return
	case c.queued > max:
		c.closing = true
		c.queue = nil // what is queued is dropped, as presenced does
		c.qmu.Unlock()
		c.closeSlow()
		return
	}
	c.queue = append(c.queue, f)
	c.queued += f.size
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // writePump has been woken already
	}
}

func (c *client) closeSlow() {
	go func() {
		c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4008, "slow consumer"), time.Now().Add(time.Second))
		c.conn.Close()
	}()
}

func (c *client) closeWith(code int, reason string) {
	c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
}

func (c *client) sendError(code, message string) {
	c.enqueue(single(encode(errorOut{Type: "error", Code: code, Message: message})), false)
}

// writePump is the only writer of c.conn's data frames (gorilla allows one concurrent writer).
func (c *client) writePump() {
	ticker := time.NewTicker(c.hub.cfg.pingInterval)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	var batch, spare []*frame
	for {
		select {
		case <-c.wake:
			c.qmu.Lock()
			batch, c.queue = c.queue, spare[:0]
			c.qmu.Unlock()
			for i, f := range batch {
				var err error
				if f.pm != nil {
					err = c.conn.WritePreparedMessage(f.pm)
				} else {
					err = c.conn.WriteMessage(websocket.TextMessage, f.data)
				}
				batch[i] = nil
				c.qmu.Lock()
				c.queued -= f.size
				c.qmu.Unlock()
				if err != nil {
					return
				}
			}
			if cap(batch) <= 4096 {
				spare = batch // reuse; a burst's large array is left to the GC
			} else {
				spare = nil
			}
		case <-ticker.C:
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		case <-c.done:
			return
		}
	}
}

// readPump reads messages until the connection ends, then cleans up.
func (c *client) readPump() {
	cfg := c.hub.cfg
	// Two missed pongs close the connection (pings every PING_INTERVAL from writePump).
	pongWait := 2*cfg.pingInterval + cfg.pingInterval/2
	c.conn.SetReadLimit(cfg.maxMessageBytes) // above it gorilla closes with 1009
	c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(pongWait))
	})
	defer c.cleanup()
	for {
		messageType, data, err := c.conn.ReadMessage()
		if err != nil {
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				c.closeWith(websocket.ClosePolicyViolation, "no pong")
			}
			return
		}
		if !c.limiter.allow(cfg.messageRate, monoMillis()) {
			c.strikes++
			limit := cfg.messageRate
			if limit < 1 {
				limit = 1
			}
			if c.strikes > 4*limit {
				c.closeWith(websocket.ClosePolicyViolation, "message rate")
				return
			}
			c.sendError("rate_limited", fmt.Sprintf("more than %d messages per second", cfg.messageRate))
			continue
		}
		c.strikes = 0
		if messageType != websocket.TextMessage {
			c.sendError("bad_json", "binary frames are not accepted")
			continue
		}
		if !utf8.Valid(data) { // gorilla leaves text validation to the application
			c.closeWith(websocket.CloseInvalidFramePayloadData, "")
			return
		}
		c.handle(data)
	}
}

func (c *client) handle(data []byte) {
	m, perr := parseClientMessage(data)
	if perr != nil {
		c.sendError(perr.code, perr.message)
		return
	}
	switch *m.Type {
	case "ping":
		c.enqueue(pongMessage, false)
	case "join":
		channel := *m.Channel
		if c.allowed != nil && !c.allowed[channel] {
			c.sendError("forbidden_channel", "the token does not allow this channel")
			return
		}
		if c.joined[channel] {
			c.enqueue(single(presenceMessage(c.user, true, channel)), false) // confirm again, count once
			return
		}
		if len(c.joined) >= maxChannelsPerConn {
			c.sendError("too_large", fmt.Sprintf("at most %d channels per connection", maxChannelsPerConn))
			return
		}
		c.joined[channel] = true
		c.hub.join(c, channel)
	case "leave":
		channel := *m.Channel
		if !c.joined[channel] {
			c.sendError("not_joined", "not a member of this channel")
			return
		}
		c.stopTyping(channel, nil)
		delete(c.joined, channel)
		c.hub.leave(c, channel)
	case "message":
		channel := *m.Channel
		if !c.joined[channel] {
			c.sendError("not_joined", "join the channel before sending to it")
			return
		}
		id, ms := c.server.ids.next()
		timestamp := time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
		data := encode(chatOut{Type: "message", ID: id, Sender: c.user, Content: *m.Content, Channel: channel, Timestamp: timestamp})
		c.hub.broadcast(channel, prepare(data), "", false) // encoded once, framed once
	case "typing":
		channel := *m.Channel
		if !c.joined[channel] {
			c.sendError("not_joined", "join the channel before typing in it")
			return
		}
		if *m.Typing {
			c.startTyping(channel)
		} else {
			c.stopTyping(channel, nil)
		}
	}
}

// startTyping announces typing:true to the other users once, and (re)arms the 5 s auto-stop.
func (c *client) startTyping(channel string) {
	entry := &typingEntry{}
	c.mu.Lock()
	old := c.typing[channel]
	c.typing[channel] = entry
	entry.timer = time.AfterFunc(typingTimeout, func() { c.stopTyping(channel, entry) })
	if old != nil {
		old.timer.Stop() // still typing: only the auto-stop moves
	}
	c.mu.Unlock()
	if old == nil {
		c.announceTyping(channel, true)
	}
}

// stopTyping ends typing in channel (only `expected`'s, when not nil) and announces typing:false.
func (c *client) stopTyping(channel string, expected *typingEntry) {
	c.mu.Lock()
	entry := c.typing[channel]
	if entry == nil || (expected != nil && entry != expected) {
		c.mu.Unlock()
		return
	}
	delete(c.typing, channel)
	entry.timer.Stop()
	c.mu.Unlock()
	c.announceTyping(channel, false)
}

func (c *client) announceTyping(channel string, typing bool) {
	data := encode(typingOut{Type: "typing", UserID: c.user, Channel: channel, Typing: typing})
	c.hub.broadcast(channel, prepare(data), c.user, true) // other users only
}

func (c *client) cleanup() {
	c.mu.Lock()
	typing := make([]string, 0, len(c.typing))
	for ch := range c.typing {
		typing = append(typing, ch)
	}
	c.mu.Unlock()
	for _, ch := range typing {
		c.stopTyping(ch, nil)
	}
	for ch := range c.joined {
		c.hub.leave(c, ch)
	}
	atomic.AddInt64(&c.server.connections, -1)
	close(c.done)
}

// ---------------------------------------------------------------------------------------------
// HTTP: /ws upgrade, /healthz, /readyz.

type server struct {
	cfg         *config
	hub         *hub
	replay      *replayGuard
	ids         *idGenerator
	connections int64 // atomic
	upgrader    websocket.Upgrader
}

func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-ID"); id != "" && len(id) <= 128 && saneRequestID(id) {
		return id
	}
	var b [16]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func saneRequestID(id string) bool {
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= 0x20 || c >= 0x7F || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	body := encode(struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}{message, code})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}

func headerHasToken(r *http.Request, name, token string) bool {
	for _, v := range r.Header.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	id := requestID(r)
	w.Header().Set("X-Request-ID", id)
	w.Header().Set("Connection", "close") // for the refusals below
	// The handshake checks in presenced's order: 400 for a bad upgrade, 426 for the version.
	switch {
	case r.Method != http.MethodGet:
		writeError(w, 400, "bad_upgrade", "WebSocket upgrade requires method GET, got "+r.Method)
		return
	case !headerHasToken(r, "Upgrade", "websocket"):
		writeError(w, 400, "bad_upgrade", "missing Upgrade: websocket")
		return
	case !headerHasToken(r, "Connection", "upgrade"):
		writeError(w, 400, "bad_upgrade", "missing Connection: Upgrade")
		return
	case len(r.Header.Values("Sec-WebSocket-Version")) != 1 || r.Header.Get("Sec-WebSocket-Version") != "13":
		w.Header().Set("Sec-WebSocket-Version", "13")
		writeError(w, 426, "upgrade_required", "unsupported WebSocket version; only 13 is supported")
		return
	}
	if !s.cfg.origins.allows(r) {
		writeError(w, 403, "forbidden_origin", "origin not allowed")
		return
	}
	now := time.Now().Unix()
	cl, reason := verifyToken(s.cfg, r.URL.Query().Get("token"), now)
	if cl == nil {
		writeError(w, 401, "invalid_token", "token "+reason)
		return
	}
	// Capacity before the token is spent: a refused client may retry with the same token.
	if atomic.AddInt64(&s.connections, 1) > s.cfg.maxConnections {
		atomic.AddInt64(&s.connections, -1)
		writeError(w, 503, "at_capacity", "server at capacity")
		return
	}
	if !s.replay.firstUse(cl.jti, cl.exp, now) {
		atomic.AddInt64(&s.connections, -1)
		writeError(w, 401, "invalid_token", "token replayed")
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, http.Header{"X-Request-Id": {id}})
	if err != nil {
		atomic.AddInt64(&s.connections, -1)
		return // the upgrader has answered (Upgrader.Error)
	}
	c := &client{
		hub: s.hub, server: s, conn: conn, user: cl.sub, allowed: cl.channels,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		joined: map[string]bool{}, typing: map[string]*typingEntry{},
		limiter: rateLimiter{milliTokens: int64(s.cfg.messageRate) * 2000, last: monoMillis()},
	}
	go c.writePump()
	go c.readPump()
}

func main() {
	log.SetFlags(0)
	cfg := loadConfig()
	s := &server{
		cfg:    cfg,
		hub:    &hub{cfg: cfg, rooms: map[string]*room{}},
		replay: &replayGuard{seen: map[string]int64{}},
		ids:    newIDGenerator(),
	}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:    4096,
		WriteBufferSize:   4096,
		EnableCompression: false,                                    // presenced does not compress
		CheckOrigin:       func(*http.Request) bool { return true }, // checked before (ALLOWED_ORIGINS)
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			writeError(w, status, "bad_upgrade", reason.Error())
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", s.serveWS)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-ID", requestID(r))
		switch r.URL.Path {
		case "/healthz", "/readyz":
			if r.Method != http.MethodGet {
				w.Header().Set("Allow", "GET")
				writeError(w, 405, "method_not_allowed", "use GET")
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			if r.URL.Path == "/healthz" {
				w.Write([]byte(`{"status":"ok"}`))
			} else {
				w.Write([]byte(`{"status":"ready"}`))
			}
		default:
			writeError(w, 404, "not_found", "no such endpoint")
		}
	})
	addr := net.JoinHostPort(cfg.bind, cfg.port)
	log.Printf(`{"level":"info","msg":"peer-go listening","addr":%q,"message_rate":%d}`, addr, cfg.messageRate)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Fatal(err)
	}
}
