package pid1

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBackoff(t *testing.T) {
	b := &Backoff{Initial: time.Second, Max: 10 * time.Second}
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next())
	}
	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Backoff.Next sequence mismatch (-want +got):\n%s", diff)
	}
	b.Reset()
	if got := b.Next(); got != time.Second {
		t.Errorf("Backoff.Next after Reset = %v, want 1s", got)
	}
}

func TestDefaultBackoff(t *testing.T) {
	b := DefaultBackoff()
	var last time.Duration
	for range 20 {
		last = b.Next()
	}
	if last != time.Minute {
		t.Errorf("DefaultBackoff settles at %v, want 1m", last)
	}
}
