package install

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func consoleEvents() []Event {
	return []Event{
		{Type: EventStepStart, Step: &StepInfo{Step: 2, Steps: 3, Type: "image", Target: "rootfs", Image: "rootfs"}},
		{Type: EventProgress, Progress: &Progress{Step: 2, Steps: 3, Percent: 10, BytesPerSec: 20e6, ETASeconds: 65, SkippedChunks: 4}},
		{Type: EventProgress, Progress: &Progress{Step: 2, Steps: 3, Percent: 20, BytesPerSec: 20e6, ETASeconds: 60}},
		{Type: EventStepDone, StepDone: &StepStats{Step: 2, Steps: 3, Type: "image", Target: "rootfs", WrittenBytes: 5e6, SkippedChunks: 4, SkippedBytes: 4e6, Seconds: 1.25}},
	}
}

func TestConsoleTerminal(t *testing.T) {
	var b bytes.Buffer
	c := NewConsole(&b, true)
	for _, e := range consoleEvents() {
		c.Observe(e)
	}
	out := b.String()
	for _, want := range []string{
		"\r[2/3] image rootfs  10.0%  20.0 MB/s  ETA 1:05  skipped 4",
		"\r[2/3] image rootfs  20.0%  20.0 MB/s  ETA 1:00",
		"\r[2/3] image rootfs: done in 1.2s, wrote 5.0 MB, skipped 4 chunks (4.0 MB), zeroed 0 B",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 1 {
		t.Errorf("terminal output has %d lines, want 1 (redrawn in place): %q", n, out)
	}
}

func TestConsolePlain(t *testing.T) {
	var b bytes.Buffer
	c := NewConsole(&b, false)
	c.PlainInterval = time.Hour
	for _, e := range consoleEvents() {
		c.Observe(e)
	}
	want := "[2/3] image rootfs  10.0%  20.0 MB/s  ETA 1:05  skipped 4\n" +
		"[2/3] image rootfs: done in 1.2s, wrote 5.0 MB, skipped 4 chunks (4.0 MB), zeroed 0 B\n"
	if got := b.String(); got != want {
		t.Errorf("plain output:\n%q\nwant\n%q", got, want)
	}
}
