// Package protocol is the wire format between a unit (the rescue in
// factory mode) and a factory station: JSON over HTTP(S), version 1, under
// the path prefix /api/v1. docs/station.md describes each call; the
// station's server and the client package both use these types, so they
// cannot drift apart.
package protocol

import (
	"encoding/json"
	"time"

	"github.com/lifeboat-updater/lifeboat/station/identity"
	"github.com/lifeboat-updater/lifeboat/unitdata"
)

// Version is the protocol version; Prefix the path every call is under.
const (
	Version = 1
	Prefix  = "/api/v1"
)

// Paths, relative to the station's base URL. {run} is a run id.
const (
	PathAnnounce = Prefix + "/announce"             // POST Announce -> AnnounceReply
	PathIdentity = Prefix + "/runs/{run}/identity"  // POST -> identity.Identity
	PathUnitData = Prefix + "/runs/{run}/unit-data" // GET -> unitdata.Signed (JSON)
	PathEvents   = Prefix + "/runs/{run}/events"    // POST JSON lines, ?seq=N -> 204
	PathResult   = Prefix + "/runs/{run}/result"    // POST Report -> ReportReply
	PathSerials  = Prefix + "/serials"              // POST Scan -> 204 (an operator's scanner)
)

// Announce is a unit saying hello: which board it is and how to know it
// again.
type Announce struct {
	Protocol int               `json:"protocol"`
	Board    string            `json:"board"`
	Revision string            `json:"revision,omitempty"`
	Hardware unitdata.Hardware `json:"hardware"`
	Rescue   string            `json:"rescue,omitempty"` // the rescue's version
}

// AnnounceReply opens (or resumes) a run: one provisioning attempt of the
// unit. A unit that announces again before it reported gets the same run
// back (Resumed), so a board that lost the network continues.
type AnnounceReply struct {
	Unit    int64  `json:"unit"`
	Run     int64  `json:"run"`
	Attempt int    `json:"attempt"` // 1 for the unit's first run
	Resumed bool   `json:"resumed"`
	Bundle  Bundle `json:"bundle"`
}

// Bundle is the bundle the unit is to install.
type Bundle struct {
	Name        string `json:"name"`
	URL         string `json:"url"` // absolute, served with Range support
	Product     string `json:"product"`
	Version     string `json:"version"`
	IndexSHA256 string `json:"index_sha256"`
	Size        int64  `json:"size"`
}

// Identity is identity.Identity on the wire.
type Identity = identity.Identity

// Report is a run's result. Events holds the install's JSON-lines events
// (docs/cli.md "Events") not yet sent with PathEvents, each with its
// sequence number; the station keeps each sequence number once.
type Report struct {
	Pass     bool         `json:"pass"`
	Reason   string       `json:"reason,omitempty"` // why it failed; empty on pass
	ReadBack string       `json:"read_back"`        // ReadBackPass, ReadBackFail or ReadBackNone
	Steps    []StepResult `json:"steps"`
	Seconds  float64      `json:"duration_seconds"`
	Events   []Event      `json:"events,omitempty"`
}

// Read-back verdicts.
const (
	ReadBackPass = "pass" // every image read back equal
	ReadBackFail = "fail"
	ReadBackNone = "none" // not read back
)

// StepResult is one step of a run: an install step, or a factory step
// such as "unit-data" or "read-back".
type StepResult struct {
	Step    int     `json:"step"`
	Name    string  `json:"name"`   // e.g. "image rootfs", "unit-data"
	Result  string  `json:"result"` // "ok", "failed", "skipped"
	Seconds float64 `json:"duration_seconds"`
	Note    string  `json:"note,omitempty"`
}

// Event is one install event with its sequence number in the run's log
// (0-based). Body is the event's JSON object as the installer wrote it.
type Event struct {
	Seq  int             `json:"seq"`
	Body json.RawMessage `json:"event"`
}

// ReportReply confirms a report. Duplicate is set when the run had been
// reported already: the first report stands.
type ReportReply struct {
	Run       int64  `json:"run"`
	Result    string `json:"result"` // "pass" or "fail", as recorded
	Duplicate bool   `json:"duplicate"`
}

// Scan registers a serial number an operator scanned from a label. With
// Hardware, the serial is kept for that board; without, it goes to the
// next unit that asks for an identity.
type Scan struct {
	Serial   string            `json:"serial"`
	Hardware unitdata.Hardware `json:"hardware,omitzero"`
}

// Error is every error reply's body.
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	// RetryAfter, when set, is when to ask again (also the Retry-After
	// header).
	RetryAfter int `json:"retry_after_seconds,omitempty"`
}

// Error codes.
const (
	CodeBadRequest    = "bad-request"    // 400: malformed, or a value that breaks its format
	CodeBoardRefused  = "board-refused"  // 403: this board type or revision is not made on this line
	CodeNoBundle      = "no-bundle"      // 409: no allowed bundle is compatible with the board
	CodeUnknownRun    = "unknown-run"    // 404
	CodeExhausted     = "exhausted"      // 503: the serial range or MAC pool is used up, or no scanned serial waits
	CodeDuplicate     = "duplicate"      // 409: a scanned serial is already known
	CodeVersion       = "version"        // 400: a protocol version the station does not speak
	CodeInternal      = "internal"       // 500
	CodeNoCredentials = "no-credentials" // 409: the unit data needs a certificate and the station has no CA
)

// DefaultRetry is how long a unit waits after "exhausted" before asking
// again.
const DefaultRetry = 10 * time.Second
