package source

import (
	"context"
	"fmt"
	"strings"
)

// Attempt is why one source failed.
type Attempt struct {
	Source string
	Err    error
}

// Error is returned by OpenFirst when no source opened. It holds the last
// round's failures, one per source; errors.Is sees through to each.
type Error struct {
	Rounds   int
	Attempts []Attempt
	// Ctx is the context's error when it ended the search, else nil.
	Ctx error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "source: no source worked (%d rounds)", e.Rounds)
	for _, a := range e.Attempts {
		fmt.Fprintf(&b, "; %s: %v", a.Source, a.Err)
	}
	if e.Ctx != nil {
		fmt.Fprintf(&b, "; %v", e.Ctx)
	}
	return b.String()
}

func (e *Error) Unwrap() []error {
	var out []error
	for _, a := range e.Attempts {
		out = append(out, a.Err)
	}
	if e.Ctx != nil {
		out = append(out, e.Ctx)
	}
	return out
}

// OpenFirst tries the sources in order and returns the first that opens,
// with the source it came from. When all fail it waits (rounds.Delay) and
// tries them all again, for rounds.Attempts rounds (negative: until ctx
// ends), logging why each failed. Each source does its own retrying within
// a round (HTTP.Retry), so a dead server costs a bounded time before the
// next source gets its turn.
func OpenFirst(ctx context.Context, sources []Source, rounds Backoff, logf func(format string, args ...any)) (*Stream, Source, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if len(sources) == 0 {
		return nil, nil, fmt.Errorf("%w: no sources", ErrSpec)
	}
	e := &Error{}
	for round := 0; ; round++ {
		e.Rounds = round + 1
		e.Attempts = e.Attempts[:0]
		for _, s := range sources {
			if err := ctx.Err(); err != nil {
				e.Ctx = err
				return nil, nil, e
			}
			logf("source: trying %s", s)
			st, err := s.Open(ctx)
			if err == nil {
				logf("source: opened %s (%s)", st.Name, sizeString(st.Size))
				return st, s, nil
			}
			logf("source: %s: %v", s, err)
			e.Attempts = append(e.Attempts, Attempt{Source: s.String(), Err: err})
		}
		if rounds.exhausted(round) {
			return nil, nil, e
		}
		d := rounds.Delay(round)
		logf("source: no source worked; trying again in %v", d.Round(100_000_000))
		if err := sleep(ctx, d); err != nil {
			e.Ctx = err
			return nil, nil, e
		}
	}
}

func sizeString(n int64) string {
	if n < 0 {
		return "size unknown"
	}
	return fmt.Sprintf("%d bytes", n)
}
