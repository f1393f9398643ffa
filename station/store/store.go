// Package store keeps a factory line's records durably: units (a board,
// known by its hardware ids, and the identity it was given), runs (each
// provisioning attempt of a unit, with its steps, result and event log)
// and the counters that serial numbers and MAC addresses are allocated
// from. Every allocation is committed before it is returned, and unique
// constraints stand behind the counters, so a serial or MAC is never
// given twice: not after a crash, not by several stations sharing one
// PostgreSQL database.
//
// Two databases implement Store: SQLite (OpenSQLite, pure Go, the default)
// and PostgreSQL (OpenPostgres, for lines where several stations share the
// records). They share the SQL and differ where the databases do (dialect);
// storetest runs one suite against both.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/lifeboat-updater/lifeboat/station/identity"
	"github.com/lifeboat-updater/lifeboat/station/protocol"
	"github.com/lifeboat-updater/lifeboat/unitdata"
)

// Errors. Compare with errors.Is.
var (
	// ErrNotFound means no record has that id.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate means a scanned serial is known already (scanned
	// before, or given to a unit).
	ErrDuplicate = errors.New("store: already known")
	// ErrExhausted is identity.ErrExhausted: nothing was allocated.
	ErrExhausted = identity.ErrExhausted
)

// Store is a line's records.
type Store interface {
	// Announce records a unit (creating it the first time its hardware
	// key is seen) and opens a run for it, or returns its open run
	// (resumed = true): a board that retries continues where it was.
	Announce(ctx context.Context, a NewRun) (r Run, resumed bool, err error)
	// Allocate gives the unit its serial and MACs, or returns the ones
	// it has. It commits before it returns; on ErrExhausted nothing is
	// allocated.
	Allocate(ctx context.Context, unit int64, p Pools) (identity.Identity, error)
	// SetCredentials stores the unit's certificate and key unless it has
	// some already, and returns the identity as stored: of two callers
	// racing, both get the first one's.
	SetCredentials(ctx context.Context, unit int64, cert, key string) (identity.Identity, error)
	// RegisterSerial keeps a scanned serial for the board with hwKey, or
	// (hwKey "") for the next unit that needs one.
	RegisterSerial(ctx context.Context, serial, hwKey string) error
	// AddEvents appends events to a run's log; a sequence number the log
	// has already is ignored.
	AddEvents(ctx context.Context, run int64, events []Event) error
	// Finish records a run's result and its remaining events. A run that
	// was finished already keeps its first result (dup = true).
	Finish(ctx context.Context, run int64, res Result) (r Run, dup bool, err error)

	Run(ctx context.Context, id int64) (Run, error)
	// Runs lists runs, newest first; limit 0 means all.
	Runs(ctx context.Context, limit int) ([]Run, error)
	Events(ctx context.Context, run int64) ([]Event, error)
	Unit(ctx context.Context, id int64) (Unit, error)
	Summary(ctx context.Context, now time.Time) (Summary, error)
	Close() error
}

// NewRun is an announce as the store records it.
type NewRun struct {
	Station  string
	Board    string
	Revision string
	Hardware unitdata.Hardware
	Bundle   string // the bundle's name at the station
	Product  string
	Version  string
	Time     time.Time
}

// Pools are where identities come from. With Scanned, a serial an operator
// scanned (for this board, else the oldest waiting) comes first; then the
// range, if any.
type Pools struct {
	Serials *identity.SerialRange
	Scanned bool
	MACs    *identity.MACPool
}

// Unit is one board.
type Unit struct {
	ID       int64
	HWKey    string
	Board    string
	Revision string
	Hardware unitdata.Hardware
	Identity identity.Identity
	Created  time.Time
}

// Run is one provisioning attempt of a unit.
type Run struct {
	ID       int64     `json:"id"`
	Unit     int64     `json:"unit"`
	Attempt  int       `json:"attempt"`
	Station  string    `json:"station"`
	Board    string    `json:"board"`
	Revision string    `json:"revision,omitempty"`
	HWKey    string    `json:"hardware"`
	Serial   string    `json:"serial,omitempty"`
	Bundle   string    `json:"bundle"`
	Product  string    `json:"product"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	// Finished is zero while the run is in progress.
	Finished time.Time             `json:"finished,omitzero"`
	Result   string                `json:"result,omitempty"` // ResultPass, ResultFail, "" in progress
	Reason   string                `json:"reason,omitempty"`
	ReadBack string                `json:"read_back,omitempty"`
	Steps    []protocol.StepResult `json:"steps,omitempty"`
	Seconds  float64               `json:"duration_seconds,omitempty"`
}

// Results.
const (
	ResultPass = "pass"
	ResultFail = "fail"
)

// Result is what Finish records.
type Result struct {
	Pass     bool
	Reason   string
	ReadBack string
	Steps    []protocol.StepResult
	Seconds  float64
	Events   []Event
	Time     time.Time
}

// Event is one entry of a run's log.
type Event struct {
	Seq  int
	Kind string // the event's "event" field
	Time time.Time
	Body []byte // the JSON object
}

// Summary counts a line's runs.
type Summary struct {
	InProgress int
	Passed     int
	Failed     int
	// FinishedLastHour counts runs finished within the hour before now;
	// Since is the start of that window or the line's first run, when
	// later.
	FinishedLastHour int
	Since            time.Time
}

// Yield is the share of finished runs that passed (0 with none).
func (s Summary) Yield() float64 {
	if s.Passed+s.Failed == 0 {
		return 0
	}
	return float64(s.Passed) / float64(s.Passed+s.Failed)
}

// UnitsPerHour is the rate of finished runs over the last hour (or over
// the time since the first run, when that is shorter).
func (s Summary) UnitsPerHour(now time.Time) float64 {
	d := now.Sub(s.Since)
	if s.FinishedLastHour == 0 || d <= 0 {
		return 0
	}
	if d < time.Minute {
		d = time.Minute // a first unit in its first seconds is not thousands per hour
	}
	return float64(s.FinishedLastHour) * float64(time.Hour) / float64(d)
}
