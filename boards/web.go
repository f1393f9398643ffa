package boards

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Web configures the rescue's recovery web page (package webui,
// docs/web.md): when the rescue serves it, and what opens it.
type Web struct {
	// Enable says when the rescue serves the page: WebAuto (the default),
	// WebAlways or WebNever. The kernel command line's lifeboat.web= wins
	// over it.
	Enable string `json:"enable,omitempty"`
	// PasswordHash, when set, is the password that opens the page, in
	// place of the one-time code the rescue prints on its console.
	PasswordHash *PasswordHash `json:"password_hash,omitempty"`
}

// Values of Web.Enable.
const (
	// WebAuto serves the page when a person asked for the recovery (the
	// button) and when every bundle source has failed.
	WebAuto = "auto"
	// WebAlways serves it whenever the rescue runs.
	WebAlways = "always"
	// WebNever never serves it.
	WebNever = "never"
)

// validate checks the section.
func (w *Web) validate() error {
	switch w.Enable {
	case "", WebAuto, WebAlways, WebNever:
		return nil
	}
	return fmt.Errorf("%w: web enable %q (want %s, %s or %s)", ErrInvalid, w.Enable, WebAuto, WebAlways, WebNever)
}

// PasswordHash is a password as a PBKDF2-HMAC-SHA256 hash, written in a
// profile as one string in Django's format (Django's make_password makes
// it, and so does the Python line in docs/web.md):
//
//	pbkdf2_sha256$<iterations>$<salt>$<base64 of the 32-byte key>
//
// The salt is used as its ASCII bytes. The profile is part of the rescue
// image, which anyone with the image can read: the hash, salted and
// stretched, keeps a good password from being read back out of it.
type PasswordHash struct {
	Iterations int
	Salt       string
	Key        []byte
}

// Limits on a PasswordHash. Fewer iterations make a weak hash; more would
// let one sign-in attempt keep a small board's CPU busy for many seconds.
const (
	MinPasswordIterations = 10_000
	MaxPasswordIterations = 10_000_000
	passwordScheme        = "pbkdf2_sha256"
)

// ParsePasswordHash reads the profile's form of a hash. Errors wrap
// ErrInvalid.
func ParsePasswordHash(s string) (*PasswordHash, error) {
	h, err := parsePasswordHash(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return h, nil
}

func parsePasswordHash(s string) (*PasswordHash, error) {
	bad := func(why string) error {
		return fmt.Errorf("web password_hash: %s (want %s$ITERATIONS$SALT$BASE64KEY)", why, passwordScheme)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 4 {
		return nil, bad("not four fields separated by $")
	}
	if parts[0] != passwordScheme {
		return nil, bad(fmt.Sprintf("scheme %q", parts[0]))
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || n < MinPasswordIterations || n > MaxPasswordIterations {
		return nil, bad(fmt.Sprintf("iterations %q, want %d to %d", parts[1], MinPasswordIterations, MaxPasswordIterations))
	}
	if len(parts[2]) < 8 {
		return nil, bad("salt shorter than 8 characters")
	}
	key, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil || len(key) != sha256.Size {
		return nil, bad("key is not 32 bytes of base64")
	}
	return &PasswordHash{Iterations: n, Salt: parts[2], Key: key}, nil
}

// NewPasswordHash hashes password with a new random salt.
func NewPasswordHash(password string, iterations int) (*PasswordHash, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	h := &PasswordHash{Iterations: iterations, Salt: base64.RawURLEncoding.EncodeToString(b[:])}
	key, err := pbkdf2.Key(sha256.New, password, []byte(h.Salt), iterations, sha256.Size)
	if err != nil {
		return nil, err
	}
	h.Key = key
	if _, err := ParsePasswordHash(h.String()); err != nil {
		return nil, err
	}
	return h, nil
}

// Verify reports whether password is the hashed one, comparing in
// constant time.
func (h *PasswordHash) Verify(password string) bool {
	key, err := pbkdf2.Key(sha256.New, password, []byte(h.Salt), h.Iterations, len(h.Key))
	return err == nil && subtle.ConstantTimeCompare(key, h.Key) == 1
}

// String is the profile's form.
func (h *PasswordHash) String() string {
	return fmt.Sprintf("%s$%d$%s$%s", passwordScheme, h.Iterations, h.Salt, base64.StdEncoding.EncodeToString(h.Key))
}

// MarshalJSON writes the profile's form.
func (h *PasswordHash) MarshalJSON() ([]byte, error) { return json.Marshal(h.String()) }

// UnmarshalJSON reads and checks the profile's form. Parse wraps its
// errors in ErrInvalid.
func (h *PasswordHash) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("web password_hash: %w", err)
	}
	p, err := parsePasswordHash(s)
	if err != nil {
		return err
	}
	*h = *p
	return nil
}
