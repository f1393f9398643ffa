//go:build !linux

package rescue

import (
	"time"

	"github.com/lifeboat-updater/lifeboat/boards"
)

// openButton needs Linux's input and GPIO devices.
func openButton(b *boards.Button, wait time.Duration) (Key, string, error) {
	return nil, "", ErrUnsupported
}
