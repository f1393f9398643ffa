package rescue

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/pid1"
)

// The flow's events: the install engine's JSON-lines events and the
// flow's own (reason, bootenv, factory-reset), to EventsPath and, with
// lifeboat.events=console, the console.

// eventWriters are where the flow's JSON-lines events go: EventsPath
// and, with lifeboat.events=console, the console.
type eventWriters struct {
	mu sync.Mutex
	ws []io.Writer
}

// observer writes the install's events.
func (w *eventWriters) observer() install.Observer {
	var obs []install.Observer
	for _, x := range w.ws {
		obs = append(obs, install.JSONLines(x))
	}
	return install.Observers(obs...)
}

// emit writes one event of the flow's own (reason, bootenv,
// factory-reset) in the install events' form: "event", "time", fields.
func (w *eventWriters) emit(kind string, fields map[string]any) {
	if w == nil {
		return
	}
	m := map[string]any{"event": kind, "time": time.Now().Format(time.RFC3339Nano)}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, x := range w.ws {
		x.Write(b)
	}
}

// eventWriters opens EventsPath (appending: one attempt after another)
// and, with lifeboat.events=console, the console.
func (in *Installer) eventWriters(env *pid1.Env) (*eventWriters, func()) {
	w := &eventWriters{}
	var closers []io.Closer
	if p := pathOr(in.EventsPath, EventsPath); p != "-" {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			env.Log.Printf("events: %v", err)
		} else if f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			env.Log.Printf("events: %v", err)
		} else {
			w.ws = append(w.ws, f)
			closers = append(closers, f)
		}
	}
	if env.Params["events"] == "console" {
		c := in.Console
		if c == nil {
			if f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
				c = f
				closers = append(closers, f)
			} else {
				c = os.Stdout
			}
		}
		w.ws = append(w.ws, &prefixWriter{w: c, prefix: EventPrefix})
	}
	return w, func() {
		for _, c := range closers {
			c.Close()
		}
	}
}

// prefixWriter puts a prefix before each line written; JSONLines writes
// one whole line per Write.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var out []byte
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			out = append(append(out, p.prefix...), line...)
		}
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// logWriter turns the install console's lines into log lines.
type logWriter struct{ log pid1.Logger }

func (w logWriter) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line = strings.TrimRight(line, "\r"); line != "" {
			w.log.Printf("%s", line)
		}
	}
	return len(b), nil
}

// ReadEvents reads the JSON-lines events a flow wrote (EventsPath, or the
// console lines after EventPrefix), for tests and reports: each is a map
// of the event's fields.
func ReadEvents(r io.Reader) ([]map[string]any, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.Index(line, EventPrefix); i >= 0 {
			line = line[i+len(EventPrefix):]
		}
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return out, fmt.Errorf("rescue: event %q: %w", line, err)
		}
		out = append(out, m)
	}
	return out, nil
}
