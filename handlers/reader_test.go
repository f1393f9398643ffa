package handlers_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/lifeboat-updater/lifeboat/handlers"
)

func TestReaderTarget(t *testing.T) {
	// 10 bytes of a longer reader: nothing past them is read.
	tg := handlers.NewReaderTarget(strings.NewReader("0123456789abcdef"), 10, "volume")
	if tg.Size() != 10 || tg.String() != "volume" {
		t.Errorf("Size(), String() = %d, %q, want 10, %q", tg.Size(), tg.String(), "volume")
	}
	tests := []struct {
		off     int64
		n       int
		want    string
		wantErr error
	}{
		{0, 4, "0123", nil},
		{6, 4, "6789", nil},
		{8, 4, "89", io.EOF},
		{10, 4, "", io.EOF},
		{-1, 4, "", handlers.ErrOutOfRange},
	}
	for _, tt := range tests {
		p := make([]byte, tt.n)
		n, err := tg.ReadAt(p, tt.off)
		if string(p[:n]) != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("ReadAt(%d bytes at %d) = %q, %v, want %q, %v", tt.n, tt.off, p[:n], err, tt.want, tt.wantErr)
		}
	}
	for name, err := range map[string]error{
		"WriteAt":   func() error { _, err := tg.WriteAt([]byte("x"), 0); return err }(),
		"ZeroRange": tg.ZeroRange(0, 1),
		"Discard":   tg.Discard(0, 1),
	} {
		if !errors.Is(err, handlers.ErrReadOnly) {
			t.Errorf("%s() = %v, want %v", name, err, handlers.ErrReadOnly)
		}
	}
	if err := errors.Join(tg.Sync(), tg.DropCache(0, 10), tg.Close()); err != nil {
		t.Errorf("Sync, DropCache, Close = %v, want nil", err)
	}
	// Still readable after Close: the reader's owner closes it.
	p := make([]byte, 2)
	if _, err := tg.ReadAt(p, 0); err != nil || !bytes.Equal(p, []byte("01")) {
		t.Errorf("ReadAt after Close = %q, %v", p, err)
	}
}
