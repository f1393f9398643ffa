package boards

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// djangoHash is the head of what Django's make_password("correct horse",
// "saltsalt12", "pbkdf2_sha256") writes with 10000 iterations; the key is
// computed with Python's hashlib.pbkdf2_hmac, the format's reference.
const djangoHash = "pbkdf2_sha256$10000$saltsalt12$"

func TestWebProfile(t *testing.T) {
	h, err := NewPasswordHash("correct horse", MinPasswordIterations)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse([]byte(`{"name": "b", "storage": {}, "web": {"enable": "always", "password_hash": "` + h.String() + `"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Web.Enable != WebAlways {
		t.Errorf("Enable = %q, want %q", p.Web.Enable, WebAlways)
	}
	if diff := cmp.Diff(h, p.Web.PasswordHash); diff != "" {
		t.Errorf("PasswordHash (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		password string
		want     bool
	}{
		{"correct horse", true},
		{"correct horse ", false},
		{"Correct horse", false},
		{"", false},
	} {
		if got := p.Web.PasswordHash.Verify(tt.password); got != tt.want {
			t.Errorf("Verify(%q) = %v, want %v", tt.password, got, tt.want)
		}
	}
}

func TestPasswordHashReference(t *testing.T) {
	// python3 -c 'import hashlib,base64; print(base64.b64encode(hashlib.pbkdf2_hmac("sha256", b"correct horse", b"saltsalt12", 10000)).decode())'
	h, err := ParsePasswordHash(djangoHash + "nnfr8xfzUXwPfNcYjw0ZchhRZUl9v3jecHDwgWhzrpE=")
	if err != nil {
		t.Fatal(err)
	}
	if !h.Verify("correct horse") {
		t.Error("Verify(the password Python hashed) = false, want true")
	}
}

func TestWebProfileErrors(t *testing.T) {
	key := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	tests := []struct{ name, web string }{
		{"enable", `{"enable": "sometimes"}`},
		{"unknown field", `{"password": "secret"}`},
		{"hash not a string", `{"password_hash": 3}`},
		{"hash fields", `{"password_hash": "pbkdf2_sha256$10000$saltsalt12"}`},
		{"hash scheme", `{"password_hash": "md5$10000$saltsalt12$` + key + `"}`},
		{"few iterations", `{"password_hash": "pbkdf2_sha256$1000$saltsalt12$` + key + `"}`},
		{"many iterations", `{"password_hash": "pbkdf2_sha256$100000000$saltsalt12$` + key + `"}`},
		{"short salt", `{"password_hash": "pbkdf2_sha256$10000$salt$` + key + `"}`},
		{"short key", `{"password_hash": "pbkdf2_sha256$10000$saltsalt12$AAAA"}`},
		{"key not base64", `{"password_hash": "pbkdf2_sha256$10000$saltsalt12$!!!"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(`{"name": "b", "storage": {}, "web": ` + tt.web + `}`))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(web %s) = %v, want ErrInvalid", tt.web, err)
			}
			if n := strings.Count(err.Error(), "invalid board profile"); n != 1 {
				t.Errorf("error %q names the error class %d times, want once", err, n)
			}
		})
	}
}
