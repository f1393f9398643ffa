package guest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var errSentinel = errors.New("guest: sentinel")

type result struct {
	Step  string `json:"step"`
	Err   string `json:"err,omitempty"`
	Bytes int64  `json:"bytes,omitempty"`
}

func TestLine(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    any
		err  error
		want string
	}{
		{"no error", result{Step: "a", Bytes: 1<<62 + 1}, nil, `{"step":"a","bytes":4611686018427387905}`},
		{"own err kept", result{Step: "a", Err: "stderr"}, nil, `{"step":"a","err":"stderr"}`},
		{"error", result{Step: "a", Bytes: 1<<62 + 1}, errors.New("boom"), `{"bytes":4611686018427387905,"err":"boom","step":"a"}`},
		{"error replaces own", result{Step: "a", Err: "stderr"}, errors.New("boom"), `{"err":"boom","step":"a"}`},
		{"sentinel", result{Step: "a"}, fmt.Errorf("write: %w", errSentinel), `{"err":"write: guest: sentinel","is":"guest: sentinel","step":"a"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := line(tt.r, tt.err, []error{errSentinel})
			if err != nil || string(got) != tt.want {
				t.Errorf("line(%+v, %v) = %s, %v, want %s", tt.r, tt.err, got, err, tt.want)
			}
		})
	}
}

func TestSHA256(t *testing.T) {
	got, err := SHA256(strings.NewReader("abc"))
	want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if err != nil || got != want {
		t.Errorf("SHA256(abc) = %s, %v, want %s", got, err, want)
	}
}
