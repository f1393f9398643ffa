package webui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNormalizeCode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"7KQ2-M9XD", "7KQ2M9XD"},
		{"7kq2 m9xd", "7KQ2M9XD"},
		{" 7KQ2--M9XD ", "7KQ2M9XD"},
		{"oO0-iIlL", "000" + "1111"},
		{"ABCD_EFGH", "ABCDEFGH"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := normalizeCode(tt.in); got != tt.want {
			t.Errorf("normalizeCode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNewCode(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		c, err := newCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != CodeLength+1 || c[4] != '-' || strings.Trim(c, codeAlphabet+"-") != "" || strings.Count(c, "-") != 1 {
			t.Fatalf("newCode() = %q, want 4+4 characters of %s", c, codeAlphabet)
		}
		if normalizeCode(c) != strings.ReplaceAll(c, "-", "") {
			t.Errorf("code %q changes when normalized: a typed code would not match", c)
		}
		seen[c] = true
	}
	if len(seen) < 199 {
		t.Errorf("%d different codes in 200", len(seen))
	}
}

func TestSecretCheck(t *testing.T) {
	s := secret{code: sha256Of(normalizeCode("0K1Q-M9XD"))}
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"0K1Q-M9XD", true},
		{"ok1q m9xd", true}, // O for 0, l would be 1
		{"0KLQM9XD", true},
		{"0K1Q-M9XE", false},
		{"0K1Q-M9X", false},
		{"", false},
	} {
		if got := s.check(tt.in); got != tt.want {
			t.Errorf("check(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestLimiter walks one client's wrong codes through the backoff.
func TestLimiter(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	l := newLimiter(clock.Now)
	type step struct {
		advance  time.Duration
		wrong    bool // else: ask only
		wantWait time.Duration
	}
	steps := []step{
		{0, true, 0},            // 1
		{0, true, 0},            // 2
		{0, true, time.Second},  // 3: the free tries are used
		{0, false, time.Second}, //
		{500 * time.Millisecond, false, 500 * time.Millisecond},
		{500 * time.Millisecond, true, 2 * time.Second}, // 4
		{2 * time.Second, true, 4 * time.Second},        // 5
		{4 * time.Second, true, 8 * time.Second},        // 6
	}
	var got []time.Duration
	var want []time.Duration
	for _, s := range steps {
		clock.Add(s.advance)
		if s.wrong {
			got = append(got, l.fail("10.0.0.1"))
		} else {
			got = append(got, l.wait("10.0.0.1"))
		}
		want = append(want, s.wantWait)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	if d := l.wait("10.0.0.2"); d != 0 {
		t.Errorf("another client waits %v, want 0", d)
	}
	for range 30 {
		l.fail("10.0.0.1")
		clock.Add(MaxBackoff)
	}
	if d := l.fail("10.0.0.1"); d != MaxBackoff {
		t.Errorf("after many wrong codes the wait is %v, want the cap %v", d, MaxBackoff)
	}
	l.success("10.0.0.1")
	clock.Add(time.Hour)
	if d := l.wait("10.0.0.1"); d != 0 {
		t.Errorf("after a sign-in the wait is %v, want 0", d)
	}
}

func TestLimiterBounded(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	l := newLimiter(clock.Now)
	for i := range maxClients + 100 {
		clock.Add(time.Hour) // the global budget refills
		l.fail(fmt.Sprintf("10.0.%d.%d", i>>8, i&255))
	}
	if len(l.clients) > maxClients {
		t.Errorf("%d client records, want at most %d", len(l.clients), maxClients)
	}
}

func TestClientKey(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"10.0.2.2:5000", "10.0.2.2"},
		{"[::ffff:10.0.2.2]:5000", "10.0.2.2"},
		{"[2001:db8:1:2:3:4:5:6]:80", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:80", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"pipe", "pipe"},
	} {
		if got := clientKey(tt.in); got != tt.want {
			t.Errorf("clientKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSessions(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	s := &sessions{now: clock.Now, m: map[[32]byte]time.Time{}}
	first, err := s.create()
	if err != nil {
		t.Fatal(err)
	}
	if !s.valid(first) || s.valid("") || s.valid(first+"x") {
		t.Error("valid() wrong")
	}
	for range maxSessions {
		clock.Add(time.Second)
		if _, err := s.create(); err != nil {
			t.Fatal(err)
		}
	}
	if s.valid(first) || len(s.m) > maxSessions {
		t.Errorf("%d sessions, the oldest still valid: %v; want at most %d, the oldest gone", len(s.m), s.valid(first), maxSessions)
	}
}

// TestHubReplay: a page that connects late replays the job with only the
// newest progress of each kind, in order.
func TestHubReplay(t *testing.T) {
	h := newHub()
	h.publish("job", []byte("job1"), keepNewStart)
	h.publish("start", []byte("start"), keepEvent)
	h.publish("received", []byte("r1"), keepLatest)
	h.publish("step-start", []byte("s1"), keepEvent)
	h.publish("progress", []byte("p1"), keepLatest)
	h.publish("received", []byte("r2"), keepLatest)
	h.publish("progress", []byte("p2"), keepLatest)
	h.publish("status", []byte("st"), keepNot)
	h.publish("step-done", []byte("d1"), keepEvent)
	h.publish("progress", []byte("p3"), keepLatest)
	_, replay := h.subscribe()
	var got []string
	for _, m := range replay {
		got = append(got, string(m))
	}
	want := []string{"job1", "start", "r1", "s1", "p2", "r2", "d1", "p3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replay (-want +got):\n%s", diff)
	}
	h.publish("job", []byte("job2"), keepNewStart)
	_, replay = h.subscribe()
	if len(replay) != 1 || string(replay[0]) != "job2" {
		t.Errorf("replay after a new job: %q", replay)
	}
}

// TestHubSlowPage: a page that does not read is dropped, and publishing
// never waits for it.
func TestHubSlowPage(t *testing.T) {
	h := newHub()
	s, _ := h.subscribe()
	for range subQueue + maxReplay + 1 {
		h.publish("progress", []byte("p"), keepLatest)
	}
	select {
	case <-s.gone:
	default:
		t.Error("a page that reads nothing is still subscribed")
	}
	for range maxSubs {
		if s, _ := h.subscribe(); s == nil {
			t.Fatal("subscribe refused below the limit")
		}
	}
	if s, _ := h.subscribe(); s != nil {
		t.Error("subscribe past the limit accepted")
	}
}
