package install

import (
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// The kinds of Event, in the order an install emits them.
const (
	EventStart     = "start"      // the bundle is open and its signature verified
	EventPlan      = "plan"       // every check passed; what will be written where
	EventStepStart = "step-start" //
	EventProgress  = "progress"   // a running step's progress, a few times a second at most
	EventStepDone  = "step-done"  //
	EventError     = "error"      // the install (or plan, or verify) failed
	EventDone      = "done"       // it succeeded
)

// Event is one thing that happened during an install. Exactly one of the
// pointers matches Type. Its JSON form is one flat object: "event" (the
// Type), "time", and the fields of that pointer; docs/cli.md lists them.
type Event struct {
	Type     string
	Time     time.Time
	Start    *StartInfo
	Plan     *PlanInfo
	Step     *StepInfo // step-start
	Progress *Progress
	StepDone *StepStats
	Error    *ErrorInfo
	Done     *DoneInfo
}

// Observer receives events. The engine calls it from one goroutine at a
// time, in order; it must not block for long, since it holds up the
// install.
type Observer func(Event)

// StartInfo describes the bundle being installed.
type StartInfo struct {
	Bundle          string   `json:"bundle"` // where it comes from: a path, "-", a URL
	Product         string   `json:"product"`
	Version         string   `json:"version"`
	SecurityVersion uint64   `json:"security_version"`
	Compatible      []string `json:"compatible"`
	Signers         []string `json:"signers"`
	Created         string   `json:"created,omitempty"`
	Steps           int      `json:"steps"`
}

// PlanInfo is the plan: every check passed.
type PlanInfo struct {
	Board string `json:"board"`
	// DeviceSecurityVersion is the device's security version before the
	// install; BundleSecurityVersion the bundle's.
	DeviceSecurityVersion uint64     `json:"device_security_version"`
	BundleSecurityVersion uint64     `json:"bundle_security_version"`
	Steps                 []PlanStep `json:"steps"`
}

// PlanStep is one step of a plan and where it writes.
type PlanStep struct {
	Step   int    `json:"step"`
	Type   string `json:"type"`
	Target string `json:"target"`
	// Via says how the target name was resolved: "command line", "board
	// profile", "bundle partition table", "disk partition table",
	// "bootenv".
	Via       string `json:"via"`
	Path      string `json:"path,omitempty"`      // device or file written
	Partition string `json:"partition,omitempty"` // when the target is a partition
	Offset    int64  `json:"offset"`              // of the target within Path
	Size      int64  `json:"size"`                // of the target
	Image     string `json:"image,omitempty"`
	ImageSize int64  `json:"image_size,omitempty"`
	// At is where the image starts, in bytes from the target's start.
	At     int64 `json:"at,omitempty"`
	Chunks int   `json:"chunks,omitempty"`
	// Kind is the kind of raw flash target: "mtd", "ubi" (a volume) or
	// "ubi_image"; empty for block devices and files.
	Kind string `json:"kind,omitempty"`
	// EraseSize is the erase block size of raw flash.
	EraseSize int64 `json:"erase_size,omitempty"`
	// Volume and Spare are a UBI volume target's volumes.
	Volume  string   `json:"volume,omitempty"`
	Spare   string   `json:"spare,omitempty"`
	Mode    string   `json:"mode,omitempty"`    // wipe mode
	Changes []string `json:"changes,omitempty"` // partition table: why it is written; UBI: layout changes
	Set     []string `json:"set,omitempty"`     // env variables set
	Unset   []string `json:"unset,omitempty"`   // env variables removed
}

// StepInfo starts a step.
type StepInfo struct {
	Step   int    `json:"step"`
	Steps  int    `json:"steps"`
	Type   string `json:"type"`
	Target string `json:"target"`
	Path   string `json:"path,omitempty"`
	Image  string `json:"image,omitempty"`
	Bytes  int64  `json:"bytes"` // what the step goes through: image size, target size for a wipe
}

// Progress is a running step's state.
type Progress struct {
	Step          int     `json:"step"`
	Steps         int     `json:"steps"`
	DoneBytes     int64   `json:"done_bytes"` // written + skipped + zeroed
	TotalBytes    int64   `json:"total_bytes"`
	WrittenBytes  int64   `json:"written_bytes"`
	SkippedBytes  int64   `json:"skipped_bytes"`
	ZeroedBytes   int64   `json:"zeroed_bytes"`
	SkippedChunks int     `json:"skipped_chunks"`
	Percent       float64 `json:"percent"`
	BytesPerSec   float64 `json:"bytes_per_second"`
	ETASeconds    float64 `json:"eta_seconds"`
}

// StepStats is what a step did.
type StepStats struct {
	Step          int     `json:"step"`
	Steps         int     `json:"steps"`
	Type          string  `json:"type"`
	Target        string  `json:"target"`
	WrittenBytes  int64   `json:"written_bytes"`
	SkippedBytes  int64   `json:"skipped_bytes"`
	ZeroedBytes   int64   `json:"zeroed_bytes"`
	WrittenChunks int     `json:"written_chunks"`
	SkippedChunks int     `json:"skipped_chunks"`
	ZeroedChunks  int     `json:"zeroed_chunks"`
	Verified      bool    `json:"verified"` // read back and compared
	Seconds       float64 `json:"duration_seconds"`
	Note          string  `json:"note,omitempty"`
}

// ErrorInfo says why an install failed. Chunk and Offset are set for a
// chunk that could not be installed.
type ErrorInfo struct {
	Step     int    `json:"step,omitempty"` // 1-based; 0 when no step was running
	Image    string `json:"image,omitempty"`
	Chunk    *int   `json:"chunk,omitempty"`
	Offset   *int64 `json:"offset,omitempty"` // target offset of the chunk
	Target   string `json:"target,omitempty"`
	Reason   string `json:"reason"`
	ExitCode int    `json:"exit_code"`
}

// DoneInfo ends a successful install.
type DoneInfo struct {
	Steps           int     `json:"steps"`
	WrittenBytes    int64   `json:"written_bytes"`
	SkippedBytes    int64   `json:"skipped_bytes"`
	ZeroedBytes     int64   `json:"zeroed_bytes"`
	Seconds         float64 `json:"duration_seconds"`
	SecurityVersion uint64  `json:"security_version"` // the device's, after the install
	// PeakRSSBytes is the installing process's peak resident memory
	// (VmHWM); 0 where the system does not say.
	PeakRSSBytes int64 `json:"peak_rss_bytes,omitempty"`
}

// MarshalJSON writes the event as one flat object.
func (e Event) MarshalJSON() ([]byte, error) {
	head, err := json.Marshal(struct {
		Event string    `json:"event"`
		Time  time.Time `json:"time"`
	}{e.Type, e.Time})
	if err != nil {
		return nil, err
	}
	var body any
	switch {
	case e.Start != nil:
		body = e.Start
	case e.Plan != nil:
		body = e.Plan
	case e.Step != nil:
		body = e.Step
	case e.Progress != nil:
		body = e.Progress
	case e.StepDone != nil:
		body = e.StepDone
	case e.Error != nil:
		body = e.Error
	case e.Done != nil:
		body = e.Done
	default:
		return head, nil
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	if len(b) <= 2 {
		return head, nil
	}
	// {"event":..,"time":..} + , + "field":...}
	out := append(head[:len(head)-1:len(head)-1], ',')
	return append(out, b[1:]...), nil
}

// StartEvent describes the opened bundle br, read from source.
func StartEvent(br *bundle.Reader, source string) Event {
	m := br.Manifest()
	return Event{Type: EventStart, Time: time.Now(), Start: &StartInfo{
		Bundle: source, Product: m.Product, Version: m.Version, SecurityVersion: m.SecurityVersion,
		Compatible: m.Compatible, Signers: br.Signers(), Created: m.Created, Steps: len(m.Steps),
	}}
}

// ErrorEvent describes err, with the step and chunk it happened in when
// err carries them.
func ErrorEvent(err error) Event {
	info := &ErrorInfo{Reason: err.Error(), ExitCode: ExitCode(err)}
	var se *StepError
	if errors.As(err, &se) {
		info.Step, info.Target = se.Step, se.Target
	}
	var ce *ChunkError
	if errors.As(err, &ce) {
		chunk, off := ce.Chunk, ce.Offset
		info.Step, info.Image, info.Chunk, info.Offset, info.Target = ce.Step, ce.Image, &chunk, &off, ce.Target
	}
	return Event{Type: EventError, Time: time.Now(), Error: info}
}

// JSONLines returns an Observer that writes each event to w as one line
// of JSON. Write errors are ignored: a reader that went away must not stop
// an install.
func JSONLines(w io.Writer) Observer {
	var mu sync.Mutex
	return func(e Event) {
		b, err := json.Marshal(e)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		w.Write(append(b, '\n'))
	}
}

// Observers returns an Observer that passes each event to every non-nil
// one of obs in turn.
func Observers(obs ...Observer) Observer {
	return func(e Event) {
		for _, o := range obs {
			if o != nil {
				o(e)
			}
		}
	}
}
