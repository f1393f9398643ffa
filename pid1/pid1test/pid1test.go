// Package pid1test holds what tests of code running on package pid1
// share: a Logger that keeps the lines.
package pid1test

import (
	"fmt"
	"strings"
	"sync"
)

// Log is a pid1.Logger that records every line, safe for concurrent use.
type Log struct {
	mu sync.Mutex
	l  []string
}

// Printf records one line.
func (l *Log) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l = append(l.l, fmt.Sprintf(format, args...))
}

// String is the lines recorded so far, joined by newlines.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.l, "\n")
}

// Lines is a copy of the lines recorded so far.
func (l *Log) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.l...)
}
