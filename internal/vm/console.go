package vm

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// console keeps everything the guest printed and a cursor: each Expect
// looks only after the end of the previous match, so waiting twice for the
// same text waits for it to be printed twice (a second boot).
type console struct {
	sinks []io.Writer

	mu     sync.Mutex
	buf    []byte
	pos    int           // end of the last match
	change chan struct{} // closed and replaced on every write
	closed bool
}

func newConsole(sinks ...io.Writer) *console {
	return &console{sinks: sinks, change: make(chan struct{})}
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.buf = append(c.buf, p...)
	close(c.change)
	c.change = make(chan struct{})
	c.mu.Unlock()
	for _, s := range c.sinks {
		_, _ = s.Write(p) // a failing log must not stall the guest
	}
	return len(p), nil
}

func (c *console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.change)
	}
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

// expect waits until match finds something in the unread output. match
// returns the end of the match (relative to what it was given), or -1.
func (c *console) expect(match func([]byte) (int, []string), timeout time.Duration, what string) ([]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		end, m := match(c.buf[c.pos:])
		if end >= 0 {
			c.pos += end
			c.mu.Unlock()
			return m, nil
		}
		closed, change := c.closed, c.change
		tail := c.tailLocked(2000)
		c.mu.Unlock()
		if closed {
			return nil, fmt.Errorf("%w before %q appeared; console ends:\n%s", ErrExited, what, tail)
		}
		select {
		case <-change:
		case <-deadline.C:
			return nil, fmt.Errorf("%w: %q not seen in %v; console ends:\n%s", ErrTimeout, what, timeout, tail)
		}
	}
}

func (c *console) tailLocked(n int) string {
	b := c.buf[c.pos:]
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
