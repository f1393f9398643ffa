package pid1

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// Logger is where the rescue tells a person at the console, and the kernel
// log, what it does. Keep it to what a person needs.
type Logger interface {
	Printf(format string, args ...any)
}

// LogFunc makes a Logger of a function, for tests: LogFunc(t.Logf).
type LogFunc func(format string, args ...any)

// Printf implements Logger.
func (f LogFunc) Printf(format string, args ...any) { f(format, args...) }

// consoleLog writes each message as a "lifeboat: " line to the console and
// as one record to the kernel log.
type consoleLog struct {
	mu      sync.Mutex
	console io.Writer // nil: none
	kmsg    io.Writer // nil: none
}

// NewLogger returns a Logger that writes "lifeboat: message" lines to
// console and, if kmsg is not nil, each message as a record to the kernel
// log (/dev/kmsg) at debug level. Debug level keeps the kernel from echoing
// the record to the console a second time (its default console_loglevel
// prints only more urgent records), while dmesg still shows it.
func NewLogger(console, kmsg io.Writer) Logger {
	return &consoleLog{console: console, kmsg: kmsg}
}

func (l *consoleLog) Printf(format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.console != nil {
		// A console that fails has nowhere to report it: ignore.
		_, _ = io.WriteString(l.console, "lifeboat: "+strings.ReplaceAll(msg, "\n", "\nlifeboat: ")+"\n")
	}
	if l.kmsg != nil {
		for _, line := range strings.Split(msg, "\n") {
			// One write is one record; the kernel truncates records
			// longer than about 1 KiB.
			_, _ = io.WriteString(l.kmsg, "<7>lifeboat: "+line+"\n")
		}
	}
}
