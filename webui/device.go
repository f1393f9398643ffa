package webui

import (
	"context"
	"errors"
	"io"

	"github.com/lifeboat-updater/lifeboat/install"
)

// Device is what the page acts on: the rescue implements it. The server
// calls at most one of Install, FactoryReset and Reboot at a time, and
// none of them from two clients at once; the rescue must still refuse
// (ErrBusy) while it runs an install or a reset of its own.
type Device interface {
	// Status says what the device is and what the rescue is doing. It is
	// called for every page that connects and after Server.StatusChanged,
	// so it must be quick and must not block.
	Status() Status

	// Install installs the bundle that streams in through u.Body, as the
	// rescue installs one from any source: bundle.NewReader on the body
	// (the signature is checked before anything else), install.NewPlan,
	// the transaction marker, Execute, the final bootloader update. It
	// passes the install's events to obs (install.StartEvent once the
	// bundle is open, then the plan's) and returns the error the console
	// shows, whose text the page shows as it is. The body is read once,
	// front to back, as it arrives: nothing may keep it whole. A body cut
	// short returns an error from Read (the engine says the bundle is
	// truncated), after which nothing from the missing part has been
	// written. ctx ends when the server closes.
	Install(ctx context.Context, u Upload, obs install.Observer) error

	// FactoryReset wipes the board's state partitions, passing progress
	// to obs as install events where it has them (step-start, progress,
	// step-done for each partition).
	FactoryReset(ctx context.Context, obs install.Observer) error

	// Reboot restarts the board into production. It need not return.
	Reboot() error
}

// ErrBusy is returned by a Device's Install or FactoryReset while the
// rescue is installing from a source of its own or resetting; the server
// answers 409 Conflict with the error's text.
var ErrBusy = errors.New("webui: the rescue is busy")

// Upload is a bundle being uploaded.
type Upload struct {
	// Body is the request body: the bundle as it arrives. Reads block
	// until the browser sends more; a dropped connection, or one that
	// stays silent for Config.StallTimeout, makes Read fail.
	Body io.Reader
	// Size is the announced length in bytes (Content-Length), -1 when
	// the client did not say.
	Size int64
	// From names the upload for the console and the events: "upload from
	// 10.0.2.2".
	From string
}

// Status is what the page says about the device. Empty fields are left
// out of the page.
type Status struct {
	// Board is the board as bundles name it: "name" or "name:revision".
	Board string `json:"board"`
	// Serial is the board's serial number, where known.
	Serial string `json:"serial,omitempty"`
	// Reason is why the rescue runs, as the console's reason line says
	// it: "boot counter past its limit (bootcount=4 > bootlimit=3);
	// action: reinstall".
	Reason string `json:"reason,omitempty"`
	// Product and Version are what is installed on the device, where
	// known.
	Product string `json:"product,omitempty"`
	Version string `json:"version,omitempty"`
	// Activity is what the rescue is doing now, in a few words: "trying
	// http://10.0.2.2:8080/demo.lfb (attempt 3)", "waiting for a bundle".
	// While the page's own install or reset runs the page says that
	// instead.
	Activity string `json:"activity,omitempty"`
	// LastError is the last failure, as the console said it.
	LastError string `json:"last_error,omitempty"`
	// CanReset says the board has state partitions a factory reset wipes
	// (the profile's recovery.state); without them the page offers none.
	CanReset bool `json:"can_reset"`
}
