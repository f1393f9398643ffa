package exitcode

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

func TestOf(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, OK},
		{fmt.Errorf("a.lfb: %w", bundle.ErrUnknownKey), Untrusted},
		{fmt.Errorf("a.lfb: %w", bundle.ErrSignature), BadSignature},
		{fmt.Errorf("a.lfb: %w", bundle.ErrTruncated), Truncated},
		{fmt.Errorf("a.lfb: %w", bundle.ErrFormat), Corrupt},
		{fmt.Errorf("chunk 3: %w", bundle.ErrChecksum), Corrupt},
		{bundle.ErrOrder, Corrupt},
		{io.ErrUnexpectedEOF, Internal},
		{errors.New("something else"), Internal},
	}
	for _, tt := range tests {
		if got := Of(tt.err); got != tt.want {
			t.Errorf("Of(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestClass(t *testing.T) {
	for code := OK; code <= Differs; code++ {
		if c := Class(code); c == "" || c == "unknown" {
			t.Errorf("Class(%d) = %q, want a name", code, c)
		}
	}
	for _, code := range []int{-1, Differs + 1, 255} {
		if c := Class(code); c != "unknown" {
			t.Errorf("Class(%d) = %q, want unknown", code, c)
		}
	}
}
