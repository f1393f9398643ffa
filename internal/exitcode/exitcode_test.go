package exitcode

import (
	"errors"
	"fmt"
	"testing"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, OK},
		{errors.New("boom"), Internal},
		{fmt.Errorf("open: %w", bundle.ErrUnknownKey), Untrusted},
		{bundle.ErrSignature, BadSignature},
		{fmt.Errorf("x: %w", fmt.Errorf("%w: eof", bundle.ErrTruncated)), Truncated},
		{bundle.ErrChecksum, Corrupt},
		{bundle.ErrFormat, Corrupt},
		{ErrIncompatible, Incompatible},
		{ErrRollback, Rollback},
		{ErrNoTarget, NoTarget},
		{ErrTooSmall, TooSmall},
		{ErrTargetIO, TargetIO},
		{ErrDiffers, Differs},
		{ErrUsage, Usage},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("Of(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
