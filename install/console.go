package install

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// Console shows an install to a person: the plan, one live line per
// running step, and a summary of each step. On a terminal the line is
// redrawn in place with \r; elsewhere (a serial console log, CI) it is
// printed as a plain line at most every PlainInterval, so the log stays
// readable.
type Console struct {
	w             io.Writer
	tty           bool
	PlainInterval time.Duration // default 5 s

	mu       sync.Mutex
	open     bool // a \r line is on screen without its newline
	width    int
	lastLine time.Time
	step     *StepInfo
}

// NewConsole returns a Console writing to w; tty says whether w is a
// terminal.
func NewConsole(w io.Writer, tty bool) *Console {
	return &Console{w: w, tty: tty, PlainInterval: 5 * time.Second}
}

// Observe is the Console's Observer.
func (c *Console) Observe(e Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case e.Start != nil:
		s := e.Start
		c.println(fmt.Sprintf("bundle %s %s (security version %d), signed by %s", s.Product, s.Version, s.SecurityVersion, strings.Join(s.Signers, ", ")))
	case e.Plan != nil:
		for _, s := range e.Plan.Steps {
			c.println(fmt.Sprintf("  step %d/%d: %s", s.Step, len(e.Plan.Steps), describe(s)))
		}
	case e.Step != nil:
		c.step = e.Step
		c.lastLine = time.Time{}
		if c.tty {
			c.redraw(c.prefix() + " ...")
		}
	case e.Progress != nil:
		p := e.Progress
		line := fmt.Sprintf("%s %5.1f%%  %s/s  ETA %s", c.prefix(), p.Percent, mb(p.BytesPerSec), eta(p.ETASeconds))
		if p.SkippedChunks > 0 {
			line += fmt.Sprintf("  skipped %d", p.SkippedChunks)
		}
		if c.tty {
			c.redraw(line)
		} else if now := time.Now(); now.Sub(c.lastLine) >= c.PlainInterval {
			c.lastLine = now
			c.println(line)
		}
	case e.StepDone != nil:
		d := e.StepDone
		line := fmt.Sprintf("[%d/%d] %s %s: done in %.1fs", d.Step, d.Steps, d.Type, d.Target, d.Seconds)
		if d.Type == "image" {
			line += fmt.Sprintf(", wrote %s, skipped %d chunks (%s), zeroed %s", mb(float64(d.WrittenBytes)), d.SkippedChunks, mb(float64(d.SkippedBytes)), mb(float64(d.ZeroedBytes)))
			if d.Verified {
				line += ", read back ok"
			}
		}
		if d.Note != "" {
			line += " (" + d.Note + ")"
		}
		c.finish(line)
		c.step = nil
	case e.Error != nil:
		// The reason itself goes to stderr; end the live line so it
		// does not run into it.
		if c.open {
			fmt.Fprintln(c.w)
			c.open = false
		}
	case e.Done != nil:
		d := e.Done
		sv := ""
		if d.SecurityVersion > 0 {
			sv = fmt.Sprintf("; the device's security version is now %d", d.SecurityVersion)
		}
		c.println(fmt.Sprintf("installed in %.1fs: wrote %s, skipped %s already on the device, zeroed %s%s",
			d.Seconds, mb(float64(d.WrittenBytes)), mb(float64(d.SkippedBytes)), mb(float64(d.ZeroedBytes)), sv))
	}
}

func (c *Console) prefix() string {
	s := c.step
	if s == nil {
		return ""
	}
	p := fmt.Sprintf("[%d/%d] %s %s", s.Step, s.Steps, s.Type, s.Target)
	if s.Image != "" && s.Image != s.Target {
		p = fmt.Sprintf("[%d/%d] %s %s -> %s", s.Step, s.Steps, s.Type, s.Image, s.Target)
	}
	return p
}

func (c *Console) redraw(line string) {
	line = bundle.EscapeLine(line) // names from the bundle, shown on a terminal
	pad := ""
	if n := c.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(c.w, "\r%s%s", line, pad)
	c.width = len(line)
	c.open = true
}

func (c *Console) finish(line string) {
	if c.tty && c.open {
		c.redraw(line)
		fmt.Fprintln(c.w)
		c.open, c.width = false, 0
		return
	}
	c.println(line)
}

func (c *Console) println(line string) {
	if c.open {
		fmt.Fprintln(c.w)
		c.open, c.width = false, 0
	}
	fmt.Fprintln(c.w, bundle.EscapeLine(line)) // names from the bundle, shown on a terminal
}

func describe(s PlanStep) string {
	where := s.Path
	if s.Partition != "" {
		where = fmt.Sprintf("%s partition %q", s.Path, s.Partition)
	}
	if s.Path != "" && (s.Offset != 0 || s.Partition != "") {
		where += fmt.Sprintf(" [%d, +%d)", s.Offset, s.Size)
	} else if s.Path != "" {
		where += fmt.Sprintf(" (%s)", mb(float64(s.Size)))
	}
	switch s.Type {
	case "image":
		at := ""
		if s.At != 0 {
			at = fmt.Sprintf(" at +%d", s.At)
		}
		return fmt.Sprintf("image %q (%s, %d chunks) -> %s%s: %s", s.Image, mb(float64(s.ImageSize)), s.Chunks, s.Target, at, where)
	case "partition":
		what := "the disk holds this table already: not written"
		if len(s.Changes) > 0 {
			what = "writes a new table: " + strings.Join(s.Changes, "; ")
		}
		return fmt.Sprintf("partition %s: %s: %s", s.Target, where, what)
	case "wipe":
		return fmt.Sprintf("wipe (%s) %s: %s", s.Mode, s.Target, where)
	case "env":
		return fmt.Sprintf("env %s: set %s; unset %s", s.Target, list(s.Set), list(s.Unset))
	}
	return fmt.Sprintf("%s %s", s.Type, s.Target)
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, " ")
}

// Bytes formats a byte count in decimal units, as the progress line
// does: "1.2 GB", "52.4 MB", "3.0 kB", "12 B".
func Bytes(n int64) string { return mb(float64(n)) }

// mb formats a byte count (or rate) in decimal units.
func mb(n float64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", n/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", n/1e3)
	}
	return fmt.Sprintf("%.0f B", n)
}

func eta(s float64) string {
	if s < 0 || s > 1e7 {
		return "--:--"
	}
	d := int(s + 0.5)
	if d >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", d/3600, d/60%60, d%60)
	}
	return fmt.Sprintf("%d:%02d", d/60, d%60)
}
