package network

import "errors"

// Errors returned by this package. Compare with errors.Is: they are wrapped
// with the interface name or the parameter that caused them.
var (
	// ErrDisabled means the kernel command line turned networking off
	// (ip=off or ip=none, or an autoconf field of off/none without an address).
	ErrDisabled = errors.New("network: disabled by ip= parameter")

	// ErrIPParam means the ip= parameter is malformed: an address that does
	// not parse, or a netmask that cannot be guessed.
	ErrIPParam = errors.New("network: bad ip= parameter")

	// ErrNoInterface means there is no wired interface to configure, or the
	// interface named by the configuration does not exist.
	ErrNoInterface = errors.New("network: no wired interface")

	// ErrNoCarrier means an interface had no link (cable, peer) within the
	// carrier timeout.
	ErrNoCarrier = errors.New("network: no carrier")

	// ErrNoLease means no DHCP server answered on an interface in time, or
	// the server refused the request (DHCPNAK) every time.
	ErrNoLease = errors.New("network: no DHCP lease")

	// ErrNotConfigured is returned by Configure when not a single interface
	// got an address. The Result still says what happened on each one.
	ErrNotConfigured = errors.New("network: no interface configured")

	// ErrUnsupported means the operating system is not Linux.
	ErrUnsupported = errors.New("network: not supported on this operating system")
)
