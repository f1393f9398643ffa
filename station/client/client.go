// Package client is the unit's side of the factory station protocol
// (docs/station.md): what the rescue calls in factory mode to announce the
// board, get its identity and unit data, send its install events and
// report its result. Every call is safe to repeat: the station answers a
// repeated call with the same identity, run and result.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-updater/lifeboat/station/protocol"
)

// Errors, to compare with errors.Is. A station's refusal is an *Error that
// matches one of them.
var (
	// ErrExhausted means the station has no serial or MAC left (or no
	// scanned serial waits): nothing was handed out. Wait and ask again;
	// Retry does.
	ErrExhausted = errors.New("station: no identity left to hand out")
	// ErrRefused means the station will not provision this board as it
	// is: a board or revision the line does not make, no allowed bundle
	// for it, a bad request. Asking again does not help.
	ErrRefused = errors.New("station: refused")
	// ErrUnknownRun means the station has no record of the run.
	ErrUnknownRun = errors.New("station: unknown run")
)

// Error is the station's answer to a call that failed.
type Error struct {
	Status     int
	Code       string // protocol.Code...
	Message    string // one line, for the console
	RetryAfter time.Duration
}

func (e *Error) Error() string { return "station: " + e.Message }

// Is matches the package's sentinel errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrExhausted:
		return e.Code == protocol.CodeExhausted
	case ErrUnknownRun:
		return e.Code == protocol.CodeUnknownRun
	case ErrRefused:
		switch e.Code {
		case protocol.CodeBoardRefused, protocol.CodeNoBundle, protocol.CodeBadRequest, protocol.CodeVersion,
			protocol.CodeNoCredentials, protocol.CodeDuplicate:
			return true
		}
	}
	return false
}

// Client talks to one station.
type Client struct {
	base string
	http *http.Client
}

// New returns a client for the station at base (e.g. "http://10.77.0.1").
// hc nil means a client with a 30 s timeout per call.
func New(base string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(base, "/"), http: hc}
}

func (c *Client) path(p string, run int64) string {
	return c.base + strings.Replace(p, "{run}", strconv.FormatInt(run, 10), 1)
}

func (c *Client) do(ctx context.Context, method, url, ctype string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("station: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var pe protocol.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(b, &pe) == nil && pe.Code != "" {
			e.Code, e.Message = pe.Code, pe.Error
			e.RetryAfter = time.Duration(pe.RetryAfter) * time.Second
		} else {
			e.Message = fmt.Sprintf("%s %s: %s", method, url, resp.Status)
		}
		return e
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if b, ok := out.(*[]byte); ok {
		*b, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return fmt.Errorf("station: %w", err)
		}
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("station: %s %s: bad reply: %w", method, url, err)
	}
	return nil
}

func (c *Client) postJSON(ctx context.Context, url string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, url, "application/json", bytes.NewReader(b), out)
}

// Announce says which board this is. The reply names the run (the same
// one again when this board announced before and has not reported) and
// the bundle to install.
func (c *Client) Announce(ctx context.Context, a protocol.Announce) (*protocol.AnnounceReply, error) {
	a.Protocol = protocol.Version
	var r protocol.AnnounceReply
	if err := c.postJSON(ctx, c.base+protocol.PathAnnounce, a, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Identity returns the unit's serial, MACs and certificate, allocating
// them the first time.
func (c *Client) Identity(ctx context.Context, run int64) (*protocol.Identity, error) {
	var id protocol.Identity
	if err := c.postJSON(ctx, c.path(protocol.PathIdentity, run), struct{}{}, &id); err != nil {
		return nil, err
	}
	return &id, nil
}

// UnitData returns the unit's signed data, as unitdata.Verify takes it.
func (c *Client) UnitData(ctx context.Context, run int64) ([]byte, error) {
	var b []byte
	if err := c.do(ctx, http.MethodGet, c.path(protocol.PathUnitData, run), "", nil, &b); err != nil {
		return nil, err
	}
	return b, nil
}

// Events sends install events (JSON objects), numbered from first.
func (c *Client) Events(ctx context.Context, run int64, first int, events []json.RawMessage) error {
	var buf bytes.Buffer
	for _, e := range events {
		buf.Write(bytes.TrimSpace(e))
		buf.WriteByte('\n')
	}
	url := c.path(protocol.PathEvents, run) + "?seq=" + strconv.Itoa(first)
	return c.do(ctx, http.MethodPost, url, "application/x-ndjson", &buf, nil)
}

// Report sends the run's result. Reporting again is harmless: the reply
// then says Duplicate and carries the first result.
func (c *Client) Report(ctx context.Context, run int64, rep protocol.Report) (*protocol.ReportReply, error) {
	var r protocol.ReportReply
	if err := c.postJSON(ctx, c.path(protocol.PathResult, run), rep, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Scan registers a serial number scanned from a label (an operator's
// scanner, not a unit, makes this call).
func (c *Client) Scan(ctx context.Context, s protocol.Scan) error {
	return c.postJSON(ctx, c.base+protocol.PathSerials, s, nil)
}
