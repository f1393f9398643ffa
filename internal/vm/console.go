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

// SlowFactor bounds how much longer than its timeout an Expect waits for
// a guest that keeps printing: see expect.
const SlowFactor = 10

// expect waits until match finds something in the unread output. match
// returns the end of the match (relative to what it was given), or -1.
//
// timeout is how long the guest may stay silent: every line it prints
// starts the wait over, so a guest that makes progress on a busy machine
// (TCG on a loaded host runs several times slower) is given the time it
// needs, up to SlowFactor times timeout in all, while a hung guest fails
// after timeout. Tests thus wait for what happens, not for how fast.
func (c *console) expect(match func([]byte) (int, []string), timeout time.Duration, what string) ([]string, error) {
	start := time.Now()
	idle := time.NewTimer(timeout)
	defer idle.Stop()
	limit := time.NewTimer(SlowFactor * timeout)
	defer limit.Stop()
	seen := -1
	for {
		c.mu.Lock()
		end, m := match(c.buf[c.pos:])
		if end >= 0 {
			c.pos += end
			c.mu.Unlock()
			return m, nil
		}
		closed, change, n := c.closed, c.change, len(c.buf)
		tail := c.tailLocked(2000)
		c.mu.Unlock()
		if closed {
			return nil, fmt.Errorf("%w before %q appeared; console ends:\n%s", ErrExited, what, tail)
		}
		if seen >= 0 && n > seen {
			idle.Reset(timeout) // it printed: still alive
		}
		seen = n
		select {
		case <-change:
		case <-idle.C:
			return nil, fmt.Errorf("%w: %q not seen, the guest printed nothing for %v (%v in all); console ends:\n%s", ErrTimeout, what, timeout, time.Since(start).Round(time.Second), tail)
		case <-limit.C:
			return nil, fmt.Errorf("%w: %q not seen in %v, though the guest kept printing; console ends:\n%s", ErrTimeout, what, time.Since(start).Round(time.Second), tail)
		}
	}
}

// waitWhileBusy waits until the console has been silent for d, or ch is closed,
// or SlowFactor times d have passed; it reports whether ch was closed.
func (c *console) waitWhileBusy(ch <-chan struct{}, d time.Duration) bool {
	idle := time.NewTimer(d)
	defer idle.Stop()
	limit := time.NewTimer(SlowFactor * d)
	defer limit.Stop()
	for {
		c.mu.Lock()
		change, closed := c.change, c.closed
		c.mu.Unlock()
		if closed {
			change = nil // no more output: only ch and the timers
		}
		select {
		case <-ch:
			return true
		case <-change:
			if !idle.Stop() {
				<-idle.C
			}
			idle.Reset(d)
		case <-idle.C:
			return false
		case <-limit.C:
			return false
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
