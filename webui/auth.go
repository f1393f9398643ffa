package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-updater/lifeboat/boards"
)

// The one-time code: CodeLength characters of Crockford's base32 (digits
// and capitals without I, L, O, U, which read like 1, 0 and V), printed in
// two groups of four: "7KQ2-M9XD". That is 40 bits. Under the global limit
// below (a burst of GlobalBurst, then one wrong code every GlobalEvery) a
// guesser on the network gets about 14,400 tries a day: finding the code
// takes 2^39 / 14,400 days on average, and the code lives for one boot.
const (
	CodeLength   = 8
	codeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)

// newCode makes a one-time code.
func newCode() (string, error) {
	var b [CodeLength]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	out := make([]byte, 0, CodeLength+1)
	for i, c := range b {
		if i == CodeLength/2 {
			out = append(out, '-')
		}
		out = append(out, codeAlphabet[c&31]) // 256 is a multiple of 32: no bias
	}
	return string(out), nil
}

// normalizeCode forgives what people do when they type a code: small
// letters, spaces and dashes anywhere, and the letters base32 leaves out
// for looking like digits.
func normalizeCode(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch r {
		case ' ', '-', '_', '\t':
			continue
		case 'O':
			r = '0'
		case 'I', 'L':
			r = '1'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// secret is what opens the page: the one-time code, or the profile's
// password.
type secret struct {
	code     [sha256.Size]byte // of the normalized code
	password *boards.PasswordHash
}

// check compares an attempt with the secret in constant time: the code
// through its hash, so that not even its length shows in the time taken.
func (s *secret) check(attempt string) bool {
	if s.password != nil {
		return s.password.Verify(attempt)
	}
	h := sha256Of(normalizeCode(attempt))
	return subtle.ConstantTimeCompare(h[:], s.code[:]) == 1
}

func sha256Of(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }

// Limits on wrong codes.
const (
	// FreeTries wrong codes in a row from one client cost nothing (typos);
	// each one after waits twice as long as the one before, from 1 s up to
	// MaxBackoff.
	FreeTries  = 3
	MaxBackoff = 5 * time.Minute
	// GlobalBurst wrong codes from anywhere may come at once, then one
	// every GlobalEvery: an attacker with many addresses gets no more.
	GlobalBurst = 20
	GlobalEvery = 6 * time.Second
	// maxClients bounds the per-client records; the oldest goes first.
	maxClients = 4096
)

// limiter slows down wrong codes, per client and in all.
type limiter struct {
	now     func() time.Time
	clients map[string]*client
	tokens  float64 // the global budget of wrong codes
	last    time.Time
}

type client struct {
	failures int
	until    time.Time // no attempt before
	seen     time.Time
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, clients: map[string]*client{}, tokens: GlobalBurst, last: now()}
}

// clientKey names the client an attempt comes from: its IPv4 address, or
// the /64 of its IPv6 address (one host can use the whole /64).
func clientKey(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return remote
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// wait returns how long the client must wait before its next attempt; 0
// lets it try now. A caller that gets 0 must report the attempt's outcome
// (fail or success) before the next wait: the server holds one lock
// around all three.
func (l *limiter) wait(key string) time.Duration {
	now := l.now()
	l.refill(now)
	var d time.Duration
	if c := l.clients[key]; c != nil && now.Before(c.until) {
		d = c.until.Sub(now)
	}
	if l.tokens < 1 {
		d = max(d, time.Duration((1-l.tokens)*float64(GlobalEvery)))
	}
	return d
}

func (l *limiter) refill(now time.Time) {
	if el := now.Sub(l.last); el > 0 {
		l.tokens = min(GlobalBurst, l.tokens+float64(el)/float64(GlobalEvery))
	}
	l.last = now
}

// fail records a wrong code and returns how long the client must now wait.
func (l *limiter) fail(key string) time.Duration {
	now := l.now()
	l.refill(now)
	l.tokens--
	c := l.clients[key]
	if c == nil {
		if len(l.clients) >= maxClients {
			l.evict()
		}
		c = &client{}
		l.clients[key] = c
	}
	c.failures++
	c.seen = now
	if n := c.failures - FreeTries; n >= 0 {
		d := MaxBackoff
		if n < 20 {
			d = min(MaxBackoff, time.Second<<n)
		}
		c.until = now.Add(d)
	}
	return l.wait(key)
}

// success forgets the client's wrong codes.
func (l *limiter) success(key string) { delete(l.clients, key) }

func (l *limiter) evict() {
	var oldest string
	var t time.Time
	for k, c := range l.clients {
		if oldest == "" || c.seen.Before(t) {
			oldest, t = k, c.seen
		}
	}
	delete(l.clients, oldest)
}

// Sessions.
const (
	// SessionCookie holds the session token: HttpOnly, SameSite=Strict.
	SessionCookie = "lifeboat_session"
	// SessionLifetime is how long a session lasts after sign-in.
	SessionLifetime = 12 * time.Hour
	// maxSessions bounds the sessions kept; the oldest goes first.
	maxSessions = 64
)

// sessions are the signed-in browsers, by the hash of their token (a map
// lookup by the token itself would compare it in variable time).
type sessions struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[[sha256.Size]byte]time.Time // expiry
}

func (s *sessions) create() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, exp := range s.m {
		if !now.Before(exp) {
			delete(s.m, k)
		}
	}
	if len(s.m) >= maxSessions {
		var oldest [sha256.Size]byte
		var t time.Time
		for k, exp := range s.m {
			if t.IsZero() || exp.Before(t) {
				oldest, t = k, exp
			}
		}
		delete(s.m, oldest)
	}
	s.m[sha256.Sum256([]byte(tok))] = now.Add(SessionLifetime)
	return tok, nil
}

func (s *sessions) valid(tok string) bool {
	if tok == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.m[sha256.Sum256([]byte(tok))]
	return ok && s.now().Before(exp)
}
