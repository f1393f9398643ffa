package source

import "errors"

// Errors returned by this package. Compare with errors.Is: they are wrapped
// with the source (URL, device, path) and the underlying cause.
var (
	// ErrNotFound means the source has no bundle: HTTP 404 or 410, a
	// missing file, no bundle on any removable medium. Permanent for this
	// attempt; a later round may find it (a stick plugged in).
	ErrNotFound = errors.New("source: bundle not found")

	// ErrForbidden means the server refused access (HTTP 401 or 403).
	ErrForbidden = errors.New("source: access refused")

	// ErrHTTPStatus means the server answered with another status that
	// retrying will not change (a 4xx other than 404, 408, 410, 429).
	ErrHTTPStatus = errors.New("source: unexpected HTTP status")

	// ErrUnreachable means the server could not be reached or kept
	// failing (connection refused, timeouts, 5xx) for all retries.
	ErrUnreachable = errors.New("source: server unreachable")

	// ErrChanged means the bundle changed on the server while it was being
	// read (its ETag, Last-Modified or size differ), so the bytes already
	// read cannot be continued. Open the source again to start over.
	ErrChanged = errors.New("source: bundle changed during download")

	// ErrNoRanges means random access was asked of a server that does not
	// answer Range requests.
	ErrNoRanges = errors.New("source: server does not support Range requests")

	// ErrTLS means the server's certificate could not be verified, even
	// after the clock was moved forward to the server's date.
	ErrTLS = errors.New("source: TLS certificate not trusted")

	// ErrNoMedia means no removable medium with a known filesystem was
	// found.
	ErrNoMedia = errors.New("source: no removable media")

	// ErrSpec means a source specification string is malformed.
	ErrSpec = errors.New("source: bad source specification")

	// ErrClosed is returned by reads after Close.
	ErrClosed = errors.New("source: read after close")

	// ErrUnsupported means the operation needs Linux.
	ErrUnsupported = errors.New("source: not supported on this operating system")
)

// permanent reports whether retrying err right away cannot help.
func permanent(err error) bool {
	for _, e := range []error{ErrNotFound, ErrForbidden, ErrHTTPStatus, ErrChanged, ErrNoRanges, ErrTLS, ErrSpec, ErrClosed, ErrUnsupported} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
